"""Scenario file schema (pydantic v2).

A scenario file is YAML written for humans: every quantity carries its unit in its key
(``scan_period_s``, ``azimuth_sigma_deg``, ``altitude_ft`` or ``altitude_m``, ``speed_kt`` or
``speed_mps``, ``max_range_km``). The models below validate the file (unknown keys are
rejected) and expose the SI values through properties (``speed_mps_si``, ``altitude_m_si``,
``max_range_m`` ...), so the simulation never sees a non-SI unit.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "FT_TO_M",
    "KT_TO_MPS",
    "Origin",
    "Partner",
    "Bias",
    "Detection",
    "Secondary",
    "Racetrack",
    "GroundRadar",
    "AirborneRadar",
    "AdsbReceiver",
    "Sensor",
    "Waypoint",
    "RouteTarget",
    "RacetrackTarget",
    "OrbitTarget",
    "TrafficTarget",
    "TrajectoryFileTarget",
    "Target",
    "Scenario",
]

FT_TO_M = 0.3048
KT_TO_MPS = 1852.0 / 3600.0
FPM_TO_MPS = FT_TO_M / 60.0

_ISO3 = re.compile(r"^[A-Z]{3}$")


class _Model(BaseModel):
    # NaN and infinity are never a meaningful scenario value: refuse them everywhere
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=False, allow_inf_nan=False)


# --------------------------------------------------------------------------------------------
# unit helpers: exactly one of <name>_ft / <name>_m (or _kt / _mps) must be given


def _one_of(values: dict, a: str, b: str, what: str, required: bool = True) -> None:
    has_a = values.get(a) is not None
    has_b = values.get(b) is not None
    if has_a and has_b:
        raise ValueError(f"give {what} once, as {a} or {b}, not both")
    if required and not (has_a or has_b):
        raise ValueError(f"{what} is required: give {a} or {b}")


class _Altitude(_Model):
    altitude_ft: float | None = Field(None, ge=-1500, le=80000)
    altitude_m: float | None = Field(None, ge=-500, le=25000)

    @model_validator(mode="after")
    def _check_alt(self):
        _one_of(self.__dict__, "altitude_ft", "altitude_m", "altitude")
        return self

    @property
    def alt_m(self) -> float:
        return self.altitude_m if self.altitude_m is not None else self.altitude_ft * FT_TO_M


class _AltSpeed(_Altitude):
    speed_kt: float | None = Field(None, gt=0, le=2000)
    speed_mps: float | None = Field(None, gt=0, le=1000)

    @model_validator(mode="after")
    def _check_speed(self):
        _one_of(self.__dict__, "speed_kt", "speed_mps", "speed")
        return self

    @property
    def spd_mps(self) -> float:
        return self.speed_mps if self.speed_mps is not None else self.speed_kt * KT_TO_MPS


# --------------------------------------------------------------------------------------------


class Origin(_Model):
    """Origin of the tracking frame and centre of the map."""

    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=180)
    alt_m: float = 0.0


class Partner(_Model):
    id: str = Field(description="ISO 3166 alpha-3 code, e.g. JPN, USA, AUS, KOR, PHL")
    name: str = ""

    @field_validator("id")
    @classmethod
    def _iso3(cls, v: str) -> str:
        if not _ISO3.match(v):
            raise ValueError("an ISO 3166 alpha-3 code in capitals such as JPN")
        return v


class Bias(_Model):
    """Systematic (registration) errors of a sensor, added to every measurement.

    ``time_s`` is a clock offset: the reported ``time_s`` of a plot is the true measurement time
    plus ``time_s``.
    """

    range_m: float = Field(0.0, ge=-100_000, le=100_000)
    azimuth_deg: float = Field(0.0, ge=-180, le=180)
    elevation_deg: float = Field(0.0, ge=-90, le=90)
    time_s: float = Field(0.0, ge=-3600, le=3600)


class Detection(_Model):
    """Probability of detection against range (see :func:`siap.sensors.radar.pd_at_range`).

    Swerling I target, square-law detector with a fixed false-alarm probability ``pfa`` per
    resolution cell: ``Pd = Pfa ** (1 / (1 + SNR))`` (Skolnik, *Introduction to Radar Systems*,
    3rd ed., sec. 2.8; Richards, *Fundamentals of Radar Signal Processing*, 2nd ed., eq. 7.60), with
    ``SNR = SNR_ref * (ref_range / r)**4`` (radar range equation). ``SNR_ref`` follows from the
    declared ``pd_at_ref_range``.
    """

    pd_at_ref_range: float = Field(0.9, gt=0, lt=1)
    ref_range_km: float = Field(gt=0)
    pfa: float = Field(1e-6, gt=0, lt=1)


class Secondary(_Model):
    """Co-located secondary surveillance radar (SSR / Mode S): replies from cooperative targets
    carry the Mode S address, the Mode 3/A code and the Mode C altitude (100 ft steps)."""

    pd: float = Field(0.97, ge=0, le=1)


class _RadarCommon(_Model):
    id: str = Field(min_length=1, max_length=16)
    partner: str
    scan_period_s: float = Field(gt=0, le=120)
    start_azimuth_deg: float = Field(0.0, ge=0, lt=360)
    rotation: Literal["clockwise", "counterclockwise"] = "clockwise"
    dimension: Literal["3d", "2d"] = "3d"
    max_range_km: float = Field(gt=0, le=1000)
    min_range_km: float = Field(0.0, ge=0)
    min_elevation_deg: float = Field(0.0, ge=-90, le=90)
    max_elevation_deg: float = Field(60.0, ge=-90, le=90)
    range_sigma_m: float = Field(ge=0, le=100_000)
    azimuth_sigma_deg: float = Field(ge=0, le=90)
    elevation_sigma_deg: float = Field(0.3, ge=0, le=90)
    detection: Detection
    false_alarms_per_scan: float = Field(0.0, ge=0, le=1_000_000)
    ssr: Secondary | None = None
    bias: Bias = Field(default_factory=Bias)

    @model_validator(mode="after")
    def _ranges(self):
        if self.min_range_km >= self.max_range_km:
            raise ValueError("min_range_km below max_range_km")
        if self.min_elevation_deg >= self.max_elevation_deg:
            raise ValueError("min_elevation_deg below max_elevation_deg")
        return self

    @property
    def max_range_m(self) -> float:
        return self.max_range_km * 1000.0

    @property
    def min_range_m(self) -> float:
        return self.min_range_km * 1000.0


class GroundRadar(_RadarCommon):
    """Rotating surveillance radar on a fixed site."""

    type: Literal["ground_radar"]
    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=180)
    alt_m: float = Field(0.0, ge=-500, le=9000)


class Racetrack(_AltSpeed):
    """A racetrack pattern: two straight legs of ``leg_length_km`` joined by half circles of
    ``turn_radius_km``; the first leg starts at the centre-line point (lat, lon) and flies
    ``heading_deg``."""

    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=180)
    heading_deg: float = Field(0.0, ge=0, lt=360)
    leg_length_km: float = Field(gt=0, le=1000)
    turn_radius_km: float = Field(gt=0, le=200)
    turn: Literal["right", "left"] = "right"


class AirborneRadar(_RadarCommon):
    """Rotating radar (rotodome, azimuth stabilised to true north) on an aircraft flying a
    racetrack. ``min_elevation_deg`` defaults to -90 (look-down); the radar horizon of the
    platform altitude still limits coverage."""

    type: Literal["airborne_radar"]
    platform: Racetrack
    min_elevation_deg: float = Field(-90.0, ge=-90, le=90)
    max_elevation_deg: float = Field(90.0, ge=-90, le=90)


class AdsbReceiver(_Model):
    """1090ES ADS-B ground station.

    Position reports arrive every ``report_interval_s`` (uniform jitter of +-``jitter_s``)
    from each ADS-B equipped aircraft in range and line of sight, each decoded with
    probability ``reception_probability``.
    """

    type: Literal["adsb_receiver"]
    id: str = Field(min_length=1, max_length=16)
    partner: str
    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=180)
    alt_m: float = Field(0.0, ge=-500, le=9000)
    max_range_km: float = Field(400.0, gt=0, le=1000)
    report_interval_s: float = Field(1.0, gt=0, le=60)
    jitter_s: float = Field(0.2, ge=0, le=60)
    reception_probability: float = Field(0.95, gt=0, le=1)

    @model_validator(mode="after")
    def _jitter(self):
        if self.jitter_s >= self.report_interval_s:
            raise ValueError("jitter_s smaller than report_interval_s")
        return self

    @property
    def max_range_m(self) -> float:
        return self.max_range_km * 1000.0


Sensor = Annotated[GroundRadar | AirborneRadar | AdsbReceiver, Field(discriminator="type")]


# --------------------------------------------------------------------------------------------
# targets


class _Transponder(_Model):
    """Identity and equipment of a target. ``cooperative`` targets carry a transponder
    (Mode S address, Mode 3/A, Mode C); ``adsb_equipped`` ones also broadcast ADS-B with the
    navigation accuracy category ``nacp`` (DO-260B Table 2-70)."""

    name: str | None = None
    cooperative: bool = True
    adsb_equipped: bool = True
    mode_s_address: str | None = Field(None, description="24-bit ICAO address in hex, e.g. 86D2A1")
    mode_3a: str | None = Field(None, description="four octal digits, e.g. 2471")
    callsign: str | None = Field(None, max_length=8)
    nacp: int = Field(9, ge=1, le=11)
    start_s: float = Field(0.0, ge=0, description="seconds after the scenario start it appears")

    @field_validator("mode_s_address")
    @classmethod
    def _hex24(cls, v):
        if v is None:
            return v
        s = str(v).lower().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-f]{1,6}", s):
            raise ValueError("a 24-bit hex address such as 86D2A1")
        return s

    @field_validator("mode_3a")
    @classmethod
    def _octal4(cls, v):
        if v is None:
            return v
        s = str(v)
        if not re.fullmatch(r"[0-7]{4}", s):
            raise ValueError("four octal digits such as 2471")
        return s

    @model_validator(mode="after")
    def _coop(self):
        if self.adsb_equipped and not self.cooperative:
            # a non-cooperative target has no transponder and so no ADS-B
            self.adsb_equipped = False
        return self


class Waypoint(_AltSpeed):
    """A route point; ``speed`` and ``altitude`` are those to reach at this point."""

    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=180)


class RouteTarget(_Transponder):
    """Fly from the first waypoint through the others (fly-by, coordinated turns at
    ``bank_deg``), changing speed and altitude along each leg; disappears at the last one
    unless ``loop``."""

    type: Literal["route"]
    waypoints: list[Waypoint] = Field(min_length=2)
    bank_deg: float = Field(25.0, gt=0, le=80)
    loop: bool = False


class RacetrackTarget(_Transponder, Racetrack):
    """Fly a racetrack pattern (e.g. a patrol or a holding) for the whole scenario."""

    type: Literal["racetrack"]
    bank_deg: float = Field(30.0, gt=0, le=80)


class OrbitTarget(_Transponder, _AltSpeed):
    """Fly a circle of ``radius_km`` around (lat, lon) for the whole scenario."""

    type: Literal["orbit"]
    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=180)
    radius_km: float = Field(gt=0, le=500)
    turn: Literal["right", "left"] = "right"
    start_bearing_deg: float = Field(0.0, ge=0, lt=360)
    bank_deg: float = Field(45.0, gt=0, le=80)


class Area(_Model):
    lat_min_deg: float = Field(ge=-90, le=90)
    lat_max_deg: float = Field(ge=-90, le=90)
    lon_min_deg: float = Field(ge=-180, le=180)
    lon_max_deg: float = Field(ge=-180, le=180)

    @model_validator(mode="after")
    def _order(self):
        if self.lat_min_deg >= self.lat_max_deg or self.lon_min_deg >= self.lon_max_deg:
            raise ValueError("lat_min_deg < lat_max_deg and lon_min_deg < lon_max_deg")
        return self


class TrafficTarget(_Model):
    """A seeded random population (see :mod:`siap.scenario.traffic`): ``airliners`` on routes
    between the listed airports (cooperative, a fraction ``adsb_fraction`` ADS-B equipped,
    some departing during the scenario), ``non_cooperative`` aircraft crossing ``area`` and
    ``manoeuvring`` aircraft (orbits, racetracks, weaves) in ``area``."""

    type: Literal["traffic"]
    airports: list[str] = Field(min_length=2)
    min_route_km: float = Field(400.0, gt=0)
    max_route_km: float = Field(4000.0, gt=0)
    airliners: int = Field(0, ge=0, le=5000)
    non_cooperative: int = Field(0, ge=0, le=5000)
    manoeuvring: int = Field(0, ge=0, le=5000)
    adsb_fraction: float = Field(0.85, ge=0, le=1)
    departing_fraction: float = Field(0.15, ge=0, le=1)
    area: Area
    seed_offset: int = 0

    @model_validator(mode="after")
    def _routes_exist(self):
        if self.min_route_km >= self.max_route_km:
            raise ValueError("min_route_km < max_route_km")
        if self.airliners:
            from siap.scenario.traffic import _routes  # the route network the generator uses

            if not _routes(self):
                raise ValueError(
                    f"at least one pair of the airports {self.min_route_km:g}-{self.max_route_km:g} km apart "
                    "for the airliners"
                )
        return self

    @field_validator("airports")
    @classmethod
    def _known(cls, v):
        from siap.scenario.airports import AIRPORTS

        for code in v:
            if code not in AIRPORTS:
                raise ValueError(f"known ICAO airport codes ({', '.join(sorted(AIRPORTS))}), not {code}")
        return v


class TrajectoryFileTarget(_Model):
    """Real trajectories (traffic JSON/Parquet or OpenSky state-vector CSV) as truth.
    ``path`` is relative to the scenario file. Flights are cut to the scenario window; a
    fraction ``adsb_fraction`` of them is taken as ADS-B equipped (all are cooperative)."""

    type: Literal["trajectory_file"]
    path: str
    format: Literal["auto", "traffic", "opensky_csv"] = "auto"
    adsb_fraction: float = Field(1.0, ge=0, le=1)
    nacp: int = Field(9, ge=1, le=11)
    max_gap_s: float = Field(60.0, gt=0, le=86400)


Target = Annotated[
    RouteTarget | RacetrackTarget | OrbitTarget | TrafficTarget | TrajectoryFileTarget,
    Field(discriminator="type"),
]


class Scenario(_Model):
    """A complete scenario: where and when, who takes part, their sensors and the targets."""

    name: str
    description: str = ""
    start_time_utc: datetime
    duration_s: float = Field(gt=0, le=86400)
    seed: int = Field(0, ge=0, lt=2**63)
    truth_step_s: float = Field(1.0, gt=0, le=60)
    origin: Origin
    partners: list[Partner] = Field(min_length=1)
    sensors: list[Sensor] = Field(min_length=1)
    targets: list[Target] = Field(min_length=1)
    # where the file came from (to resolve relative paths); not part of the file
    source_path: Path | None = Field(None, exclude=True)

    @field_validator("start_time_utc")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            return v.replace(tzinfo=UTC)
        return v.astimezone(UTC)

    @property
    def start_time_s(self) -> float:
        """Scenario start as Unix seconds UTC."""
        return self.start_time_utc.timestamp()

    @property
    def end_time_s(self) -> float:
        return self.start_time_s + self.duration_s

    @property
    def base_dir(self) -> Path:
        return self.source_path.parent if self.source_path is not None else Path.cwd()
