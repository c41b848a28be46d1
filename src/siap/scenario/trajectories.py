"""Real aircraft trajectories as truth.

Readers:

* traffic-style tables (JSON, JSON.gz, Parquet; as written by the ``traffic`` library's
  ``Traffic.to_json`` / ``to_parquet``): columns ``timestamp`` (ms since epoch or ISO string),
  ``icao24``, ``callsign``, ``latitude``, ``longitude``, ``altitude`` (barometric, ft),
  ``groundspeed`` (kt), ``track`` (deg), ``vertical_rate`` (ft/min), ``squawk``, ``onground``;
* OpenSky state-vector CSV (the ``states_2020-..`` dumps): ``time`` (s), ``icao24``, ``lat``,
  ``lon``, ``velocity`` (m/s), ``heading`` (deg), ``vertrate`` (m/s), ``callsign``,
  ``onground``, ``alert``, ``spi``, ``squawk``, ``baroaltitude`` (m), ``geoaltitude`` (m),
  ``lastposupdate``, ``lastcontact``.

Rows on the ground and bad rows (no position, no altitude, out-of-range values, duplicate
time stamps) are dropped and counted in :attr:`TrajectorySet.dropped`. A flight is one
aircraft (icao24) with no gap longer than ``max_gap_s``; a longer gap starts a new flight.

Altitude: the barometric altitude is used as the height of the truth (no atmosphere model),
which is also what Mode C and ADS-B report. Velocities come from the reported ground speed,
track and vertical rate; where those are missing they are taken from the positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from siap.errors import InputError
from siap.scenario.models import FPM_TO_MPS, FT_TO_M, KT_TO_MPS

__all__ = ["Flight", "TrajectorySet", "load_trajectories"]


@dataclass
class Flight:
    """One flight: sorted, unique time stamps (Unix s) and its states (SI)."""

    icao24: str
    callsign: str
    squawk: int  # Mode 3/A as an integer (octal digits), -1 if unknown
    time_s: np.ndarray
    lat_deg: np.ndarray
    lon_deg: np.ndarray
    alt_m: np.ndarray
    vel_enu_mps: np.ndarray  # (n, 3): east, north, up

    @property
    def mode_s_address(self) -> int:
        return int(self.icao24, 16)

    def interpolate(self, t_s):
        """States at times ``t_s``: (lat_deg, lon_deg, alt_m, vel_enu_mps (n, 3), valid).

        Linear interpolation between the recorded points (velocities too); ``valid`` is False
        outside [first, last] time of the flight."""
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        valid = (t >= self.time_s[0]) & (t <= self.time_s[-1])
        lat = np.interp(t, self.time_s, self.lat_deg)
        lon_u = np.degrees(np.unwrap(np.radians(self.lon_deg)))
        lon = (np.interp(t, self.time_s, lon_u) + 180.0) % 360.0 - 180.0
        alt = np.interp(t, self.time_s, self.alt_m)
        vel = np.stack([np.interp(t, self.time_s, self.vel_enu_mps[:, j]) for j in range(3)], axis=-1)
        for a in (lat, lon, alt):
            a[~valid] = np.nan
        vel[~valid] = np.nan
        return lat, lon, alt, vel, valid


@dataclass
class TrajectorySet:
    flights: list[Flight]
    dropped: dict[str, int] = field(default_factory=dict)
    source: str = ""

    def __len__(self) -> int:
        return len(self.flights)

    def window(self, start_s: float, end_s: float) -> TrajectorySet:
        """Flights that exist in [start_s, end_s], cut to it."""
        out = []
        for f in self.flights:
            m = (f.time_s >= start_s) & (f.time_s <= end_s)
            if m.sum() >= 2:
                out.append(
                    Flight(f.icao24, f.callsign, f.squawk, f.time_s[m], f.lat_deg[m], f.lon_deg[m], f.alt_m[m], f.vel_enu_mps[m])
                )
        return TrajectorySet(out, dict(self.dropped), self.source)


def _squawk_to_int(values) -> np.ndarray:
    """Squawks stored as decimal numbers of octal digits (e.g. 7700.0) or strings -> int code."""
    out = np.full(len(values), -1, dtype=np.int64)
    for i, s in enumerate(values):
        if s is None or (isinstance(s, float) and not np.isfinite(s)):
            continue
        txt = str(int(s)) if isinstance(s, (int, float, np.integer, np.floating)) else str(s).strip()
        txt = txt.zfill(4)
        if len(txt) == 4 and all(c in "01234567" for c in txt):
            out[i] = int(txt, 8)
    return out


def _read_frame(path: Path, fmt: str) -> tuple[pd.DataFrame, str]:
    name = path.name.lower()
    if fmt == "auto":
        fmt = "opensky_csv" if name.endswith((".csv", ".csv.gz")) else "traffic"
    try:
        if fmt == "opensky_csv":
            df = pd.read_csv(path, dtype={"icao24": str, "callsign": str, "squawk": str})
        elif name.endswith(".parquet"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_json(path, dtype={"icao24": str, "callsign": str})
    except FileNotFoundError:
        raise InputError(f"{path}: trajectory file not found") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure is a bad input file
        raise InputError(f"{path}: cannot be read as {fmt} trajectories ({type(exc).__name__}: {exc})") from None
    return df, fmt


def _normalise(df: pd.DataFrame, fmt: str, path: Path) -> pd.DataFrame:
    """To columns t, icao24, callsign, squawk, lat, lon, alt_m, gs_mps, track_deg, vz_mps, onground."""
    if fmt == "opensky_csv":
        need = ["time", "icao24", "lat", "lon", "velocity", "heading", "vertrate", "callsign", "onground", "baroaltitude"]
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise InputError(f"{path}: OpenSky state-vector CSV column {missing[0]!r} is missing")
        out = pd.DataFrame(
            {
                "t": pd.to_numeric(df["time"], errors="coerce").astype(float),
                "icao24": df["icao24"].astype(str).str.strip().str.lower(),
                "callsign": df["callsign"].fillna("").astype(str).str.strip(),
                "squawk": df["squawk"] if "squawk" in df.columns else None,
                "lat": pd.to_numeric(df["lat"], errors="coerce"),
                "lon": pd.to_numeric(df["lon"], errors="coerce"),
                "alt_m": pd.to_numeric(df["baroaltitude"], errors="coerce"),
                "gs_mps": pd.to_numeric(df["velocity"], errors="coerce"),
                "track_deg": pd.to_numeric(df["heading"], errors="coerce"),
                "vz_mps": pd.to_numeric(df["vertrate"], errors="coerce"),
                "onground": _truthy(df["onground"]),
            }
        )
        return out
    need = ["timestamp", "icao24", "latitude", "longitude", "altitude"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(f"{path}: traffic trajectory column {missing[0]!r} is missing")
    ts = df["timestamp"]
    if pd.api.types.is_datetime64_any_dtype(ts):
        if getattr(ts.dt, "tz", None) is None:
            ts = ts.dt.tz_localize("UTC")
        t = (ts - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()
    elif pd.api.types.is_numeric_dtype(ts):
        t = ts.astype(float) / (1000.0 if ts.abs().max() > 1e11 else 1.0)  # ms or s
    else:
        t = (pd.to_datetime(ts, utc=True, errors="coerce") - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()

    def col(name, scale=1.0):
        if name not in df.columns:
            return pd.Series(np.nan, index=df.index)
        return pd.to_numeric(df[name], errors="coerce") * scale

    return pd.DataFrame(
        {
            "t": t.astype(float),
            "icao24": df["icao24"].astype(str).str.strip().str.lower(),
            "callsign": (df["callsign"] if "callsign" in df.columns else pd.Series("", index=df.index)).fillna("").astype(str).str.strip(),
            "squawk": df["squawk"] if "squawk" in df.columns else pd.Series(np.nan, index=df.index),
            "lat": col("latitude"),
            "lon": col("longitude"),
            "alt_m": col("altitude", FT_TO_M),
            "gs_mps": col("groundspeed", KT_TO_MPS),
            "track_deg": col("track"),
            "vz_mps": col("vertical_rate", FPM_TO_MPS),
            "onground": _truthy(df["onground"]) if "onground" in df.columns else False,
        }
    )


def _truthy(col: pd.Series) -> pd.Series:
    """Booleans from a column of bools, 0/1 or the strings "true"/"false" (any case); missing
    values are False. (``astype(bool)`` would make the string "False" True.)"""
    if col.dtype == bool:
        return col
    return col.astype(str).str.strip().str.lower().isin(["true", "1", "1.0", "t", "yes"])


def load_trajectories(path: str | Path, *, format: str = "auto", max_gap_s: float = 60.0) -> TrajectorySet:
    """Read real trajectories; see the module docstring. Raises :class:`InputError` (one line)
    if the file is missing, unreadable or lacks a required column."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: trajectory file not found")
    raw, fmt = _read_frame(path, format)
    df = _normalise(raw, fmt, path)
    dropped: dict[str, int] = {}
    n0 = len(df)
    on = df["onground"].to_numpy(bool)
    dropped["onground"] = int(on.sum())
    df = df[~on]
    bad = (
        ~np.isfinite(df["t"])
        | ~np.isfinite(df["lat"])
        | ~np.isfinite(df["lon"])
        | (df["lat"].abs() > 90)
        | (df["lon"].abs() > 180)
        | ~df["icao24"].str.fullmatch(r"[0-9a-f]{6}")
    )
    dropped["bad_position"] = int(bad.sum())
    df = df[~bad]
    bad_alt = ~np.isfinite(df["alt_m"]) | (df["alt_m"] < -500) | (df["alt_m"] > 25000)
    dropped["bad_altitude"] = int(bad_alt.sum())
    df = df[~bad_alt]
    df = df.sort_values(["icao24", "t"], kind="stable")
    dup = df.duplicated(["icao24", "t"], keep="first")
    dropped["duplicate_time"] = int(dup.sum())
    df = df[~dup]
    flights: list[Flight] = []
    short = 0
    for icao, g in df.groupby("icao24", sort=True):
        t = g["t"].to_numpy(float)
        cuts = np.flatnonzero(np.diff(t) > max_gap_s) + 1
        for seg in np.split(np.arange(len(g)), cuts):
            if len(seg) < 2:
                short += len(seg)
                continue
            s = g.iloc[seg]
            flights.append(_make_flight(icao, s))
    dropped["isolated_point"] = short
    dropped["total"] = n0 - sum(len(f.time_s) for f in flights)
    return TrajectorySet(flights, dropped, str(path))


def _make_flight(icao: str, s: pd.DataFrame) -> Flight:
    t = s["t"].to_numpy(float)
    lat = s["lat"].to_numpy(float)
    lon = s["lon"].to_numpy(float)
    alt = s["alt_m"].to_numpy(float)
    gs = s["gs_mps"].to_numpy(float)
    trk = np.radians(s["track_deg"].to_numpy(float))
    vz = s["vz_mps"].to_numpy(float)
    ve, vn = gs * np.sin(trk), gs * np.cos(trk)
    # where the velocity was not reported, use the positions (central differences)
    r = 6_371_000.0
    de = np.gradient(np.radians(np.degrees(np.unwrap(np.radians(lon)))), t) * r * np.cos(np.radians(lat))
    dn = np.gradient(np.radians(lat), t) * r
    du = np.gradient(alt, t)
    ve = np.where(np.isfinite(ve), ve, de)
    vn = np.where(np.isfinite(vn), vn, dn)
    vz = np.where(np.isfinite(vz), vz, du)
    callsigns = s["callsign"].replace("", np.nan).dropna()
    callsign = str(callsigns.iloc[0])[:8] if len(callsigns) else ""
    sq = _squawk_to_int(s["squawk"].tolist())
    sq = sq[sq >= 0]
    squawk = int(np.bincount(sq).argmax()) if len(sq) else -1
    return Flight(icao, callsign, squawk, t, lat, lon, alt, np.stack([ve, vn, vz], axis=-1))
