"""Record types that flow through siap: plots, tracks and truth, as NumPy structured arrays.

A batch is one structured array (one row per plot, track state or truth state); hot paths work
on whole batches. Each dtype has a matching Arrow schema so that batches round-trip through
Parquet losslessly (:func:`to_arrow`, :func:`from_arrow`, :func:`write_parquet`,
:func:`read_parquet`).

Conventions (see DESIGN.md): SI units; time is float64 seconds since the Unix epoch (UTC);
azimuth is clockwise from true north; positions exchanged between rooms are Earth-centred,
Earth-fixed (ECEF, WGS84) so that partners with different local frames agree.

Absent optional values: ``mode_s_address = -1``, ``mode_3a = -1``, ``callsign = ""``,
``label = ""``, NaN for absent floats, ``truth_id = -1`` (false alarm or unknown).
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "MeasurementKind",
    "TrackStatus",
    "PLOT_DTYPE",
    "TRACK_DTYPE",
    "TRUTH_DTYPE",
    "empty_plots",
    "empty_tracks",
    "empty_truth",
    "take",
    "concatenate",
    "arrow_schema",
    "to_arrow",
    "from_arrow",
    "write_parquet",
    "read_parquet",
    "NO_MODE_S",
    "NO_MODE_3A",
    "NO_TRUTH",
]

NO_MODE_S = -1
NO_MODE_3A = -1
NO_TRUTH = -1


class MeasurementKind(IntEnum):
    """What a plot measures, which fixes the meaning of its measurement columns and ``cov``.

    * ``RADAR_3D``: ``range_m``, ``azimuth_rad``, ``elevation_rad``; ``cov`` is the 3x3
      covariance of (range m, azimuth rad, elevation rad).
    * ``RADAR_2D``: ``range_m``, ``azimuth_rad`` and, when the target replied with Mode C,
      ``alt_m`` (barometric altitude, m); ``cov`` is over (range m, azimuth rad, altitude m)
      and ``cov[2, 2]`` is ``inf`` when there is no altitude.
    * ``ADSB``: ``lat_deg``, ``lon_deg``, ``alt_m`` (WGS84 geodetic, altitude as broadcast);
      ``cov`` is the 3x3 covariance of the position error in the local east-north-up frame at
      the reported point (m^2), derived from NACp and the altitude source.
    """

    RADAR_3D = 0
    RADAR_2D = 1
    ADSB = 2


class TrackStatus(IntEnum):
    """Life cycle of a track (the tracker documents the transitions)."""

    TENTATIVE = 0
    CONFIRMED = 1
    COASTING = 2
    DELETED = 3


PLOT_DTYPE = np.dtype(
    [
        ("time_s", "f8"),  # measurement time (as the beam passed the target), Unix s UTC
        ("plot_id", "i8"),  # unique within a run
        ("sensor_id", "U16"),
        ("partner", "U3"),  # owning nation, ISO 3166 alpha-3 (JPN, USA, AUS, KOR, PHL)
        ("kind", "u1"),  # MeasurementKind
        ("sensor_lat_deg", "f8"),  # sensor position at measurement time (moves if airborne)
        ("sensor_lon_deg", "f8"),
        ("sensor_alt_m", "f8"),
        ("range_m", "f8"),
        ("azimuth_rad", "f8"),
        ("elevation_rad", "f8"),
        ("lat_deg", "f8"),
        ("lon_deg", "f8"),
        ("alt_m", "f8"),
        ("cov", "f8", (3, 3)),  # in the measurement's own terms, see MeasurementKind
        ("mode_s_address", "i4"),  # 24-bit ICAO address, -1 if none
        ("mode_3a", "i2"),  # Mode 3/A code as an integer (0o7700 for 7700), -1 if none
        ("callsign", "U8"),
        ("label", "U64"),  # confidentiality label, see siap.sharing
        ("truth_id", "i8"),  # simulation only, for analysis; trackers must never read it
    ]
)

TRACK_DTYPE = np.dtype(
    [
        ("time_s", "f8"),  # time of validity of the state
        ("track_id", "i8"),  # stable within the producing tracker
        ("status", "u1"),  # TrackStatus
        ("pos_ecef_m", "f8", (3,)),
        ("vel_ecef_mps", "f8", (3,)),
        ("cov_ecef", "f8", (6, 6)),  # covariance of (pos, vel) in ECEF, m and m/s
        ("lat_deg", "f8"),
        ("lon_deg", "f8"),
        ("alt_m", "f8"),
        ("model_prob", "f4", (2,)),  # IMM mode probabilities (CV, manoeuvre); (1, 0) if single model
        ("n_updates", "i4"),
        ("mode_s_address", "i4"),
        ("mode_3a", "i2"),
        ("callsign", "U8"),
        ("partner", "U3"),  # partner whose node produced the track ("" for a coalition track)
        ("label", "U64"),
        ("sources", "U64"),  # immediate contributors: sensor ids (local track) or PARTNER:TRACK_ID (fused)
        ("sensors", "U128"),  # provenance: every sensor id that contributed, sorted, comma separated
    ]
)

TRUTH_DTYPE = np.dtype(
    [
        ("time_s", "f8"),
        ("truth_id", "i8"),
        ("pos_ecef_m", "f8", (3,)),
        ("vel_ecef_mps", "f8", (3,)),
        ("lat_deg", "f8"),
        ("lon_deg", "f8"),
        ("alt_m", "f8"),
        ("mode_s_address", "i4"),
        ("mode_3a", "i2"),
        ("callsign", "U8"),
        ("cooperative", "?"),  # carries a transponder (and ADS-B if adsb_equipped)
        ("adsb_equipped", "?"),
    ]
)

_DEFAULTS = {
    "mode_s_address": NO_MODE_S,
    "mode_3a": NO_MODE_3A,
    "truth_id": NO_TRUTH,
}


def _empty(dtype: np.dtype, n: int) -> np.ndarray:
    arr = np.zeros(n, dtype=dtype)
    for name in dtype.names:
        base = dtype[name].base
        if name in _DEFAULTS:
            arr[name] = _DEFAULTS[name]
        elif base.kind == "f":
            arr[name] = np.nan
    return arr


def empty_plots(n: int = 0) -> np.ndarray:
    """``n`` plots with every field absent (NaN, -1 or empty string)."""
    return _empty(PLOT_DTYPE, n)


def empty_tracks(n: int = 0) -> np.ndarray:
    """``n`` track states with every field absent."""
    return _empty(TRACK_DTYPE, n)


def empty_truth(n: int = 0) -> np.ndarray:
    """``n`` truth states with every field absent."""
    return _empty(TRUTH_DTYPE, n)


def _as_bytes(batch: np.ndarray) -> np.ndarray:
    """A 1-D record batch viewed as one opaque item of ``itemsize`` bytes per record."""
    batch = np.ascontiguousarray(batch).reshape(-1)
    return batch.view(np.dtype((np.void, batch.dtype.itemsize)))


def take(batch: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``batch[index]`` (integer or boolean index) for a 1-D record batch, copied as whole
    records of raw bytes: NumPy's own indexing of records with text fields goes field by field
    and is about ten times slower."""
    return _as_bytes(batch)[index].view(batch.dtype)


def concatenate(batches: list[np.ndarray]) -> np.ndarray:
    """Concatenate 1-D record batches of one dtype (as :func:`take`, record by record)."""
    dtype = batches[0].dtype
    if any(b.dtype != dtype for b in batches):
        raise ValueError("concatenate: the batches have different dtypes")
    return np.concatenate([_as_bytes(b) for b in batches]).view(dtype)


def _arrow_type(field_dtype: np.dtype) -> pa.DataType:
    base = field_dtype.base
    if base.kind == "U":
        scalar: pa.DataType = pa.string()
    elif base.kind == "b":
        scalar = pa.bool_()
    else:
        scalar = pa.from_numpy_dtype(base)
    if field_dtype.shape:
        size = int(np.prod(field_dtype.shape))
        return pa.list_(scalar, size)
    return scalar


def arrow_schema(dtype: np.dtype) -> pa.Schema:
    """The Arrow schema of a record dtype. Sub-array fields become fixed-size lists, row-major."""
    fields = []
    for name in dtype.names:
        fd = dtype[name]
        meta = {b"shape": ",".join(str(s) for s in fd.shape).encode()} if fd.shape else None
        fields.append(pa.field(name, _arrow_type(fd), nullable=False, metadata=meta))
    return pa.schema(fields, metadata={b"siap.dtype": _dtype_name(dtype).encode()})


def _dtype_name(dtype: np.dtype) -> str:
    for name, known in (("plots", PLOT_DTYPE), ("tracks", TRACK_DTYPE), ("truth", TRUTH_DTYPE)):
        if dtype == known:
            return name
    return "custom"


def dtype_by_name(name: str) -> np.dtype:
    """The record dtype stored under ``name`` ('plots', 'tracks' or 'truth')."""
    try:
        return {"plots": PLOT_DTYPE, "tracks": TRACK_DTYPE, "truth": TRUTH_DTYPE}[name]
    except KeyError:
        raise ValueError(f"unknown record kind {name!r}; expected plots, tracks or truth") from None


def to_arrow(batch: np.ndarray) -> pa.Table:
    """Convert a record batch to an Arrow table (column per field)."""
    dtype = batch.dtype
    schema = arrow_schema(dtype)
    columns = []
    for name in dtype.names:
        fd = dtype[name]
        col = batch[name]
        if fd.shape:
            size = int(np.prod(fd.shape))
            flat = np.ascontiguousarray(col).reshape(-1)
            values = pa.array(flat, type=schema.field(name).type.value_type)
            columns.append(pa.FixedSizeListArray.from_arrays(values, size))
        elif fd.base.kind == "U":
            columns.append(pa.array(col.tolist(), type=pa.string()))
        else:
            columns.append(pa.array(np.ascontiguousarray(col)))
    return pa.Table.from_arrays(columns, schema=schema)


def from_arrow(table: pa.Table, dtype: np.dtype | None = None) -> np.ndarray:
    """Convert an Arrow table written by :func:`to_arrow` back to a record batch.

    ``dtype`` defaults to the one named in the table's schema metadata. Conversion is exact or
    refused: ``ValueError`` naming the column if the table does not carry every field of the
    dtype, if a column holds nulls (a null integer would otherwise become an arbitrary number),
    if a value does not convert losslessly to the field's type (text for a number, a fraction
    or an overflow for an integer, a list of another size) or if text is longer than its field.
    """
    if dtype is None:
        meta = table.schema.metadata or {}
        name = meta.get(b"siap.dtype", b"").decode()
        dtype = dtype_by_name(name)
    schema = arrow_schema(dtype)
    out = np.zeros(table.num_rows, dtype=dtype)
    for name in dtype.names:
        if name not in table.column_names:
            raise ValueError(f"column {name!r} is missing")
        fd = dtype[name]
        col = table.column(name).combine_chunks()
        nulls = col.null_count + (col.flatten().null_count if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) else 0)
        if nulls:
            raise ValueError(f"column {name!r} has {nulls} null value(s); expected none")
        want = schema.field(name).type
        if col.type != want:
            try:
                col = col.cast(want, safe=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                raise ValueError(f"column {name!r} is {col.type}, expected {want} ({str(e).splitlines()[0]})") from None
        if fd.base.kind == "U" and len(col):
            import pyarrow.compute as pc

            longest = pc.max(pc.utf8_length(col)).as_py() or 0
            if longest > fd.base.itemsize // 4:
                raise ValueError(f"column {name!r} has text of {longest} characters; expected at most {fd.base.itemsize // 4}")
        if fd.shape:
            flat = col.flatten().to_numpy(zero_copy_only=False)
            out[name] = flat.reshape((table.num_rows, *fd.shape))
        elif fd.base.kind == "U":
            out[name] = np.asarray(col.to_pylist(), dtype=fd.base) if len(col) else out[name]
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out


def write_parquet(batch: np.ndarray, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write a record batch to a Parquet file, with optional string metadata (e.g. scenario name)."""
    table = to_arrow(batch)
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): v.encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, str(path), compression="zstd")


def read_parquet(path: str | Path, dtype: np.dtype | None = None) -> tuple[np.ndarray, dict[str, str]]:
    """Read a Parquet file written by :func:`write_parquet`: (batch, string metadata)."""
    table = pq.read_table(str(path))
    meta = {
        k.decode(): v.decode()
        for k, v in (table.schema.metadata or {}).items()
        if not k.startswith(b"ARROW:")
    }
    return from_arrow(table, dtype), meta
