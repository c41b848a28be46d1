"""What a received record batch must look like before anything of siap uses it.

A good signature proves who sent a message, not that its content is sane: a partner's node may
be buggy or compromised, and whatever it sends reaches the receiver's fuser and picture. So
every received payload is checked twice, both before the verifier hands it on:

1. **Shape** (:func:`decode_strict`): the Arrow IPC stream must carry exactly the schema that
   :func:`siap.records.arrow_schema` writes for the message kind (same names, types, list
   sizes, in order), no nulls anywhere, text no longer than its record field (so nothing is
   silently truncated) and at most :data:`MAX_ROWS` rows. Anything else is ``malformed``.
2. **Values** (:func:`implausible_tracks`, :func:`implausible_plots`): every number a consumer
   uses must be finite and physically possible. The first rule a batch breaks is returned as
   one line (the verifier rejects it as ``implausible``); ``None`` means the batch passed.

The bounds are deliberately wide (they reject the impossible, not the unusual) and are module
constants, documented in docs/security.md:

* positions: the ``lat_deg``/``lon_deg``/``alt_m`` columns within their ranges, altitude within
  [:data:`MIN_ALT_M`, :data:`MAX_ALT_M`] (for tracks widened by :data:`ALT_SLACK_SIGMAS` of the
  track's own vertical standard deviation, at most :data:`MAX_ALT_SLACK_M`: a 2D radar track's
  altitude is barely observed, and an uncertain estimate is not an impossible one), and (tracks) the ECEF position within
  :data:`GEODETIC_TOLERANCE_M` of those geodetic columns (WGS84, NIMA TR8350.2 eq. 4-14), so a
  track cannot say one thing on the map and another to the fuser;
* speeds: at most :data:`MAX_SPEED_MPS` (about Mach 9; the fastest crewed aircraft flew at
  about 2 000 m/s);
* covariances: finite, symmetric (relative :data:`SYMMETRY_TOLERANCE`), positive definite with
  a condition number below 1 / :data:`MIN_EIGEN_RATIO` (so a fuser can invert them), and
  standard deviations at most :data:`MAX_POS_SD_M` / :data:`MAX_VEL_SD_MPS`;
* times: within ``[now - max_age_s, now + max_clock_skew_s]`` of the receiver's clock;
* codes: status, measurement kind, Mode S address (24 bit or -1), Mode 3/A (12 bit or -1),
  IMM probabilities in [0, 1], printable ASCII text.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from siap.records import (
    PLOT_DTYPE,
    TRACK_DTYPE,
    MeasurementKind,
    TrackStatus,
    arrow_schema,
    from_arrow,
)

__all__ = [
    "MAX_ROWS",
    "MAX_SPEED_MPS",
    "decode_strict",
    "implausible_tracks",
    "implausible_plots",
]

MAX_ROWS = 200_000  # rows per message; a snapshot of 10 000 tracks is 20x below
MAX_SPEED_MPS = 3_000.0
MIN_ALT_M = -2_000.0  # below the Dead Sea shore with margin for altitude noise
MAX_ALT_M = 100_000.0  # the Karman line; also the tracker's default max_altitude_m
GEODETIC_TOLERANCE_M = 1_000.0
ALT_SLACK_SIGMAS = 5.0  # a track may leave the altitude band by this many of its vertical sigmas ...
MAX_ALT_SLACK_M = 50_000.0  # ... but never by more than this
MAX_POS_SD_M = 1_000_000.0
MAX_VEL_SD_MPS = 10_000.0
MAX_RANGE_M = 5_000_000.0  # radar plots: beyond any surface or airborne radar's horizon
SYMMETRY_TOLERANCE = 1e-6
MIN_EIGEN_RATIO = 1e-12
MAX_TRACK_ID = (1 << 48) - 1  # local track ids of siap trackers and coalition track numbers

# WGS84 (NIMA TR8350.2, table 3.1)
_A = 6_378_137.0
_E2 = 6.694379990141317e-3
_TEXT_RE = re.compile(r"^[\x20-\x7e]*$")


def decode_strict(data: bytes, dtype: np.dtype) -> np.ndarray:
    """The record batch in ``data`` (Arrow IPC stream) if it has exactly ``dtype``'s schema.

    ValueError (one line) for anything else: bytes that are not an IPC stream, another schema,
    nulls, text longer than its field, more than :data:`MAX_ROWS` rows. Never lets another
    exception through (pyarrow raises OSError and others on hostile bytes).
    """
    expected = arrow_schema(dtype)
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(data))
        if not reader.schema.equals(expected, check_metadata=False):
            raise ValueError(f"schema differs from siap's {_kind_name(dtype)} schema: {_schema_diff(reader.schema, expected)}")
        batches, rows = [], 0
        for b in reader:
            rows += b.num_rows
            if rows > MAX_ROWS:
                raise ValueError(f"more than {MAX_ROWS} rows")
            batches.append(b)
        table = pa.Table.from_batches(batches, schema=reader.schema)
        for name in dtype.names:
            col = table.column(name).combine_chunks()
            nulls = col.null_count
            if isinstance(col, pa.FixedSizeListArray):
                nulls += col.flatten().null_count
            if nulls:
                raise ValueError(f"column {name!r} has {nulls} null value(s)")
            base = dtype[name].base
            if base.kind == "U" and len(col):
                longest = pc.max(pc.utf8_length(col)).as_py()
                if longest is not None and longest > base.itemsize // 4:
                    raise ValueError(f"column {name!r} has text of {longest} characters; at most {base.itemsize // 4}")
        return from_arrow(table, dtype)
    except ValueError as e:
        raise ValueError(f"payload is not a siap record batch in Arrow IPC form: {_first_line(e)}") from None
    except Exception as e:  # noqa: BLE001 - hostile bytes: pyarrow raises OSError, ArrowException, ...
        raise ValueError(f"payload is not a siap record batch in Arrow IPC form: {type(e).__name__}: {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def _kind_name(dtype: np.dtype) -> str:
    return "track" if dtype == TRACK_DTYPE else "plot" if dtype == PLOT_DTYPE else "record"


def _schema_diff(got: pa.Schema, want: pa.Schema) -> str:
    for i, f in enumerate(want):
        if i >= len(got):
            return f"field {f.name!r} is missing"
        g = got.field(i)
        if g.name != f.name:
            return f"field {i} is {g.name!r}, expected {f.name!r}"
        if g.type != f.type or g.nullable != f.nullable:
            return f"field {f.name!r} is {g.type}{'' if not g.nullable else ' (nullable)'}, expected {f.type}"
    return f"{len(got) - len(want)} extra field(s)"


def geodetic_to_ecef_m(lat_deg: np.ndarray, lon_deg: np.ndarray, alt_m: np.ndarray) -> np.ndarray:
    """WGS84 geodetic to ECEF (NIMA TR8350.2 eq. 4-14): x = (N + h) cos(lat) cos(lon),
    y = (N + h) cos(lat) sin(lon), z = (N (1 - e^2) + h) sin(lat), N = a / sqrt(1 - e^2 sin^2(lat))."""
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    s = np.sin(lat)
    n = _A / np.sqrt(1.0 - _E2 * s * s)
    return np.stack(
        [(n + alt_m) * np.cos(lat) * np.cos(lon), (n + alt_m) * np.cos(lat) * np.sin(lon), (n * (1.0 - _E2) + alt_m) * s],
        axis=-1,
    )


class _Rules:
    """Collects per-row rule violations: the rows that break any rule, and one line about the
    first rule broken (naming its first row)."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids
        self.bad = np.zeros(len(ids), bool)
        self.first: str | None = None

    def add(self, mask: np.ndarray, what: str) -> None:
        mask = np.asarray(mask, bool)
        if mask.any() and self.first is None:
            i = int(np.argmax(mask))
            self.first = f"row {i} (id {int(self.ids[i])}): {what} ({int(mask.sum())} row(s))"
        self.bad |= mask

    def result(self) -> tuple[np.ndarray, str | None]:
        return self.bad, self.first


def _text_bad(col: np.ndarray) -> np.ndarray:
    """Rows whose text is not printable ASCII."""
    uniq, inverse = np.unique(col, return_inverse=True)
    bad = np.array([not _TEXT_RE.match(s) for s in uniq.tolist()], bool)
    return bad[inverse] if len(uniq) else np.zeros(len(col), bool)


def _time_rule(t: np.ndarray, now_s: float, max_age_s: float, max_skew_s: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(t) | (t < now_s - max_age_s) | (t > now_s + max_skew_s)


def _cov_rule(cov: np.ndarray, max_sd: np.ndarray) -> tuple[np.ndarray, str]:
    """Rows whose covariance (n, k, k) is not finite, symmetric, well-conditioned positive
    definite, with standard deviations at most ``max_sd`` (k,). (mask, reason of the first)."""
    n = len(cov)
    bad = ~np.isfinite(cov).all(axis=(1, 2))
    if n == 0:
        return bad, ""
    c = np.where(np.isfinite(cov), cov, 0.0)
    scale = np.abs(c).max(axis=(1, 2))
    asym = np.abs(c - np.swapaxes(c, 1, 2)).max(axis=(1, 2))
    bad_sym = ~bad & (asym > SYMMETRY_TOLERANCE * scale)
    diag = np.diagonal(c, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", over="ignore"):
        big = (diag > max_sd**2).any(axis=1)
        # scale before the eigen-decomposition so huge finite entries cannot overflow it
        safe = np.where(scale > 0, scale, 1.0)[:, None, None]
        eig = np.linalg.eigvalsh(0.5 * (c + np.swapaxes(c, 1, 2)) / safe)
    not_pd = ~bad & ~bad_sym & ((eig[:, 0] <= MIN_EIGEN_RATIO * eig[:, -1]) | (scale == 0))
    too_big = ~bad & ~bad_sym & ~not_pd & big
    mask = bad | bad_sym | not_pd | too_big
    i = int(np.argmax(mask)) if mask.any() else 0
    why = (
        "covariance has non-finite entries" if bad[i]
        else "covariance is not symmetric" if bad_sym[i]
        else "covariance is not positive definite (or too ill-conditioned to invert)" if not_pd[i]
        else f"covariance standard deviation above {', '.join(f'{v:g}' for v in np.unique(max_sd))}"
    )
    return mask, why


def implausible_tracks(
    batch: np.ndarray, now_s: float, max_age_s: float, max_skew_s: float
) -> tuple[np.ndarray, str | None]:
    """Rows of a TRACK_DTYPE batch that break a rule (mask), and one line about the first rule
    broken (None when every row is sane)."""
    ids = batch["track_id"]
    r = _Rules(ids)
    r.add(_time_rule(batch["time_s"], now_s, max_age_s, max_skew_s),
          f"time_s not finite or outside [now - {max_age_s:g} s, now + {max_skew_s:g} s]")
    r.add((ids < 0) | (ids > MAX_TRACK_ID), f"track_id outside [0, {MAX_TRACK_ID}]")
    r.add(~np.isin(batch["status"], [int(s) for s in TrackStatus]), "status is not a TrackStatus")
    r.add(batch["n_updates"] < 0, "n_updates is negative")
    r.add((batch["mode_s_address"] < -1) | (batch["mode_s_address"] >= 1 << 24), "mode_s_address outside [-1, 2^24)")
    r.add((batch["mode_3a"] < -1) | (batch["mode_3a"] > 0o7777), "mode_3a outside [-1, 0o7777]")
    mp = batch["model_prob"]
    with np.errstate(invalid="ignore", over="ignore"):
        r.add(~(np.isfinite(mp) & (mp >= 0) & (mp <= 1)).all(axis=1), "model_prob not in [0, 1]")
        pos, vel = batch["pos_ecef_m"], batch["vel_ecef_mps"]
        # a track's altitude may be off the band by its own uncertainty (a 2D radar track's
        # altitude is barely observed), up to ALT_SLACK_SIGMAS sigma and at most MAX_ALT_SLACK_M
        slack = np.minimum(ALT_SLACK_SIGMAS * _vertical_sd(pos, batch["cov_ecef"]), MAX_ALT_SLACK_M)
        r.add(_position_bad(batch["lat_deg"], batch["lon_deg"], batch["alt_m"], slack), _position_what("", True))
        finite = np.isfinite(pos).all(axis=1) & np.isfinite(vel).all(axis=1)
        r.add(~finite, "pos_ecef_m or vel_ecef_mps not finite")
        expect = geodetic_to_ecef_m(batch["lat_deg"], batch["lon_deg"], batch["alt_m"])
        off = np.linalg.norm(np.where(np.isfinite(pos), pos, 0.0) - expect, axis=1)
        r.add(finite & ~(off <= GEODETIC_TOLERANCE_M),
              f"pos_ecef_m is more than {GEODETIC_TOLERANCE_M:g} m from lat_deg, lon_deg, alt_m")
        speed = np.linalg.norm(np.where(np.isfinite(vel), vel, 0.0), axis=1)
        r.add(finite & ~(speed <= MAX_SPEED_MPS), f"speed above {MAX_SPEED_MPS:g} m/s")
    max_sd = np.array([MAX_POS_SD_M] * 3 + [MAX_VEL_SD_MPS] * 3)
    mask, why = _cov_rule(batch["cov_ecef"], max_sd)
    r.add(mask, f"cov_ecef: {why}")
    for name in ("callsign", "sources", "sensors", "partner"):
        r.add(_text_bad(batch[name]), f"{name}: expected printable ASCII text")
    return r.result()


def _vertical_sd(pos: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Standard deviation of each position along its local vertical (geocentric, m); 0 where
    the position or covariance is not finite (those rows fail other rules)."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        p = np.where(np.isfinite(pos), pos, 0.0)
        norm = np.linalg.norm(p, axis=1, keepdims=True)
        u = np.where(norm > 0, p / np.where(norm > 0, norm, 1.0), 0.0)
        c = np.where(np.isfinite(cov[:, :3, :3]), cov[:, :3, :3], 0.0)
        var = np.einsum("ni,nij,nj->n", u, c, u)
    return np.sqrt(np.clip(np.nan_to_num(var, nan=0.0, posinf=0.0), 0.0, None))


def _position_bad(lat: np.ndarray, lon: np.ndarray, alt: np.ndarray, slack: np.ndarray | float = 0.0) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return ~((np.abs(lat) <= 90) & (np.abs(lon) <= 180) & (alt >= MIN_ALT_M - slack) & (alt <= MAX_ALT_M + slack))


def _position_what(prefix: str, slack: bool = False) -> str:
    more = f" (widened by {ALT_SLACK_SIGMAS:g} vertical sigma, at most {MAX_ALT_SLACK_M:g} m)" if slack else ""
    return (
        f"{prefix}lat_deg/{prefix}lon_deg/{prefix}alt_m not finite or outside [-90, 90] deg, [-180, 180] deg, "
        f"[{MIN_ALT_M:g}, {MAX_ALT_M:g}] m{more}"
    )


def implausible_plots(
    batch: np.ndarray, now_s: float, max_age_s: float, max_skew_s: float
) -> tuple[np.ndarray, str | None]:
    """Rows of a PLOT_DTYPE batch that break a rule (mask), and one line about the first.

    The measurement fields a kind uses must be present and possible (radar: a possible site,
    range in (0, :data:`MAX_RANGE_M`], finite azimuth, |elevation| <= 90 deg for 3D, a possible
    Mode C altitude; ADS-B: a geodetic position); the covariance block in use must be a sane
    covariance (as for tracks).
    """
    ids = batch["plot_id"]
    r = _Rules(ids)
    kind = batch["kind"].astype(np.int64)
    radar = (kind == MeasurementKind.RADAR_3D) | (kind == MeasurementKind.RADAR_2D)
    adsb = kind == MeasurementKind.ADSB
    three = kind == MeasurementKind.RADAR_3D
    r.add(_time_rule(batch["time_s"], now_s, max_age_s, max_skew_s),
          f"time_s not finite or outside [now - {max_age_s:g} s, now + {max_skew_s:g} s]")
    r.add(~(radar | adsb), "kind is not a MeasurementKind")
    r.add((batch["mode_s_address"] < -1) | (batch["mode_s_address"] >= 1 << 24), "mode_s_address outside [-1, 2^24)")
    r.add((batch["mode_3a"] < -1) | (batch["mode_3a"] > 0o7777), "mode_3a outside [-1, 0o7777]")
    r.add(radar & _position_bad(batch["sensor_lat_deg"], batch["sensor_lon_deg"], batch["sensor_alt_m"]),
          _position_what("sensor_"))
    with np.errstate(invalid="ignore"):
        rng, az, el, alt = batch["range_m"], batch["azimuth_rad"], batch["elevation_rad"], batch["alt_m"]
        meas = ~((rng > 0) & (rng <= MAX_RANGE_M) & np.isfinite(az) & (np.abs(az) <= 4 * np.pi))
        meas |= three & ~(np.abs(el) <= np.pi / 2)
        modec = radar & ~three & np.isfinite(alt)
        meas |= modec & ~((alt >= MIN_ALT_M) & (alt <= MAX_ALT_M))
    r.add(radar & meas, f"range_m/azimuth_rad/elevation_rad/alt_m missing or impossible (range in (0, {MAX_RANGE_M:g}] m)")
    r.add(adsb & _position_bad(batch["lat_deg"], batch["lon_deg"], batch["alt_m"]), _position_what(""))
    cov = batch["cov"].copy()
    # a 2D plot without Mode C carries cov[2, 2] = inf by convention: check its (range, azimuth) block
    no_alt = radar & ~three & ~(np.isfinite(alt) & np.isfinite(cov[:, 2, 2]))
    cov[no_alt, 2, :] = 0.0
    cov[no_alt, :, 2] = 0.0
    cov[no_alt, 2, 2] = 1.0
    max_sd = np.where(radar[:, None], np.array([MAX_POS_SD_M, np.pi, MAX_POS_SD_M]), MAX_POS_SD_M)
    mask, why = _cov_rule(cov, max_sd)
    r.add(mask, f"cov: {why}")
    for name in ("callsign", "sensor_id", "partner"):
        r.add(_text_bad(batch[name]), f"{name}: expected printable ASCII text")
    return r.result()
