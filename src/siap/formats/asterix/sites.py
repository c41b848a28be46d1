"""Sensor sites: which sensor (and partner) a SAC/SIC pair in an ASTERIX feed is.

A sites file (YAML)::

    sites:
      - {sac: 25, sic: 201, sensor_id: FRA-R1, partner: FRA, kind: radar,
         lat_deg: 49.0, lon_deg: 2.5, alt_m: 120.0, range_sigma_m: 70, azimuth_sigma_deg: 0.08}
      - {sac: 25, sic: 100, sensor_id: FRA-ADSB, partner: FRA, kind: adsb, lat_deg: 49, lon_deg: 2.5}

A SAC/SIC that is not in the file is never guessed: its records are counted and reported and
give no plots. A radar site may leave out ``lat_deg``/``lon_deg``: its position is then taken
from the radar's own CAT034 messages (I034/120), and its plots before the first such message
are dropped and counted (``no_site_position``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from siap.errors import ConfigError

MODE_C_STEP_M = 100.0 * 0.3048
logger = logging.getLogger("siap.formats.asterix")
_WARNED: set[tuple[int, int]] = set()


class Site(BaseModel):
    """One sensor identified by its SAC/SIC (I0xx/010)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    sac: int = Field(ge=0, le=255, description="system area code")
    sic: int = Field(ge=0, le=255, description="system identification code")
    sensor_id: str = Field(min_length=1, max_length=16)
    partner: str = Field(min_length=1, max_length=3, description="owning nation, ISO 3166 alpha-3")
    kind: Literal["radar", "adsb"] = "radar"
    lat_deg: float | None = Field(
        None, ge=-90, le=90, description="sensor latitude (WGS84); None: from the radar's I034/120"
    )
    lon_deg: float | None = Field(None, ge=-180, le=180, description="sensor longitude (WGS84)")
    alt_m: float | None = Field(None, ge=-500, le=20000, description="sensor height above the ellipsoid (m); None: I034/120 or 0")
    range_sigma_m: float = Field(70.0, gt=0, description="radar range noise, 1 sigma (m)")
    azimuth_sigma_deg: float = Field(0.08, gt=0, description="radar azimuth noise, 1 sigma (deg)")
    altitude_sigma_m: float = Field(
        MODE_C_STEP_M / math.sqrt(12.0), gt=0,
        description="Mode C / ADS-B altitude noise, 1 sigma (m); default: 100 ft quantisation",
    )  # fmt: skip
    nacp_if_absent: int = Field(7, ge=0, le=11, description="ADS-B NACp assumed when I021/090 is absent")
    label: str = Field("", max_length=64, description="confidentiality label given to its plots")


    @model_validator(mode="after")
    def _position(self):
        if (self.lat_deg is None) != (self.lon_deg is None):
            raise ValueError("give both lat_deg and lon_deg, or neither (position from I034/120)")
        return self

    @property
    def has_position(self) -> bool:
        return self.lat_deg is not None


class Sites(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sites: list[Site] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self):
        seen: set[tuple[int, int]] = set()
        for s in self.sites:
            if (s.sac, s.sic) in seen:
                raise ValueError(f"SAC/SIC {s.sac}/{s.sic} declared twice")
            seen.add((s.sac, s.sic))
        return self

    def key_table(self) -> np.ndarray:
        """Site index for each SAC*256+SIC (-1 where no site is configured)."""
        table = np.full(65536, -1, np.int64)
        for i, s in enumerate(self.sites):
            table[s.sac * 256 + s.sic] = i
        return table

    def by_sensor(self) -> dict[str, Site]:
        return {s.sensor_id: s for s in self.sites}

    def with_positions(self, positions: dict[tuple[int, int], tuple[float, float, float]]) -> Sites:
        """A copy where each site without a configured position takes the one its radar sent
        in I034/120 (``positions[(sac, sic)] = (lat_deg, lon_deg, alt_m)``). A configured
        position is kept; one more than 1 km from the radar's own is logged."""
        out = []
        for s in self.sites:
            p = positions.get((s.sac, s.sic))
            if p is not None and not s.has_position:
                alt = s.alt_m if s.alt_m is not None else p[2]
                s = s.model_copy(update={"lat_deg": p[0], "lon_deg": p[1], "alt_m": alt})
            elif p is not None and (s.sac, s.sic) not in _WARNED:
                d_m = 6371e3 * math.radians(math.hypot(p[0] - s.lat_deg, (p[1] - s.lon_deg) * math.cos(math.radians(p[0]))))
                if d_m > 1000.0:
                    _WARNED.add((s.sac, s.sic))
                    logger.warning(
                        "site %s (SAC/SIC %d/%d): configured position is %.1f km from the radar's I034/120; "
                        "using the configured one", s.sensor_id, s.sac, s.sic, d_m / 1000.0,
                    )  # fmt: skip
            out.append(s)
        return Sites(sites=out)


def load_sites(path: str | Path) -> Sites:
    """Read and validate a sites file; every problem is one :class:`ConfigError` line."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such sites file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: (file): valid YAML (got {type(exc).__name__})") from None
    except RecursionError:
        raise ConfigError(f"{path}: (top level): a YAML document of sensible depth (got one nested too deep)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: (file): a readable sites file (got {exc.strerror or exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: (top level): a mapping with a 'sites' list (got {type(raw).__name__})")
    try:
        return Sites.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(f"[{x}]" if isinstance(x, int) else str(x) for x in err.get("loc", ())).replace(".[", "[")
        msg = err.get("msg", "").removeprefix("Value error, ")
        raise ConfigError(f"{path}: {where or '(top level)'}: {msg} (got {str(err.get('input'))[:60]})") from None
