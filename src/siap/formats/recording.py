"""Recording and replay: plots, truth and pictures as Parquet, written as they come.

A recording is a folder::

    rec/
      recording.json    manifest: format version, scenario, seed, origin, row counts, streams
      plots.parquet     PLOT_DTYPE rows in non-decreasing time_s
      truth.parquet     TRUTH_DTYPE rows (simulations only)
      tracks.parquet    TRACK_DTYPE rows of every picture, plus picture_partner (string),
                        picture_kind (coalition / own / centralised / network) and
                        picture_time_s (float64): the picture each row belongs to

Each file's schema is :func:`siap.records.arrow_schema` of its record type (columns named and
typed as the dtype's fields, sub-arrays as fixed-size lists in row-major order, schema
metadata ``siap.dtype``), so every file reads back with :func:`siap.records.read_parquet` as
well; ``tracks.parquet`` adds the three ``picture_*`` columns. Rows are written in row groups
of ``row_group_rows`` as they arrive, so a recorder holds at most one row group per stream in
memory whatever the length of the run.

Replay: :func:`read_plot_batches` yields plot batches from a recording (a source for the
runtime: an iterable of PLOT_DTYPE batches in non-decreasing time); :func:`replay_source`
also takes Mode S files (Beast, AVR, JSON lines); :func:`read_pictures` yields the recorded
:class:`siap.picture.Picture` objects in time order.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from siap import records
from siap.errors import InputError

__all__ = [
    "FORMAT_VERSION",
    "Recorder",
    "tracks_schema",
    "read_plot_batches",
    "read_pictures",
    "read_manifest",
    "replay_source",
]

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
PICTURE_COLUMNS = (("picture_partner", pa.string()), ("picture_kind", pa.string()), ("picture_time_s", pa.float64()))


def tracks_schema() -> pa.Schema:
    """The schema of ``tracks.parquet``: TRACK_DTYPE's plus the picture columns."""
    base = records.arrow_schema(records.TRACK_DTYPE)
    for name, typ in PICTURE_COLUMNS:
        base = base.append(pa.field(name, typ, nullable=False))
    return base


class _Stream:
    """One Parquet file written in row groups as rows arrive."""

    def __init__(self, path: Path, schema: pa.Schema, row_group_rows: int, metadata: dict[str, str]):
        self.path = path
        meta = dict(schema.metadata or {})
        meta.update({k.encode(): v.encode() for k, v in metadata.items()})
        self.schema = schema.with_metadata(meta)
        self.row_group_rows = row_group_rows
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.rows = 0
        self.writer: pq.ParquetWriter | None = None

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.pending.append(table.replace_schema_metadata(self.schema.metadata))
        self.pending_rows += table.num_rows
        while self.pending_rows >= self.row_group_rows:
            self._write(self.row_group_rows)

    def _write(self, n: int) -> None:
        table = pa.concat_tables(self.pending)
        head, rest = table.slice(0, n), table.slice(n)
        if self.writer is None:
            self.writer = pq.ParquetWriter(str(self.path), self.schema, compression="zstd")
        self.writer.write_table(head, row_group_size=n)
        self.rows += head.num_rows
        self.pending = [rest] if rest.num_rows else []
        self.pending_rows = rest.num_rows

    def close(self) -> None:
        if self.pending_rows:
            self._write(self.pending_rows)
        if self.writer is None:  # an empty stream still leaves a readable, empty file
            self.writer = pq.ParquetWriter(str(self.path), self.schema, compression="zstd")
        self.writer.close()


class Recorder:
    """Writes a recording as a run goes: a plot tap (:meth:`on_plots`), truth
    (:meth:`on_truth`) and a :class:`siap.picture.PictureSink` (:meth:`on_picture`).

    Plots must come in non-decreasing time (the source contract): a plot older than the last
    one recorded is dropped, counted in ``dropped['late_plot']`` and logged.
    """

    def __init__(self, out_dir: str | Path, *, row_group_rows: int = 65_536, metadata: dict[str, str] | None = None):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metadata = {"siap.recording": str(FORMAT_VERSION), **(metadata or {})}
        self.row_group_rows = int(row_group_rows)
        self._plots = _Stream(self.dir / "plots.parquet", records.arrow_schema(records.PLOT_DTYPE), self.row_group_rows, self.metadata)
        self._truth: _Stream | None = None
        self._tracks: _Stream | None = None
        self._last_plot_s = -np.inf
        self.dropped: Counter = Counter()
        self.pictures = 0
        self.closed = False

    def on_plots(self, plots: np.ndarray) -> None:
        if len(plots) == 0:
            return
        plots = records.take(plots, np.argsort(plots["time_s"], kind="stable"))
        late = plots["time_s"] < self._last_plot_s
        if late.any():
            n = int(late.sum())
            self.dropped["late_plot"] += n
            log.warning("recorder %s: %d plots older than the last recorded (%.3f) dropped", self.dir, n, self._last_plot_s)
            plots = records.take(plots, ~late)
            if len(plots) == 0:
                return
        self._last_plot_s = float(plots["time_s"][-1])
        self._plots.add(records.to_arrow(plots))

    def on_truth(self, truth: np.ndarray) -> None:
        if self._truth is None:
            self._truth = _Stream(self.dir / "truth.parquet", records.arrow_schema(records.TRUTH_DTYPE), self.row_group_rows, self.metadata)
        self._truth.add(records.to_arrow(truth))

    def on_picture(self, picture) -> None:
        if self._tracks is None:
            self._tracks = _Stream(self.dir / "tracks.parquet", tracks_schema(), self.row_group_rows, self.metadata)
        table = records.to_arrow(np.asarray(picture.tracks))
        n = table.num_rows
        table = table.append_column("picture_partner", pa.array([picture.partner] * n, pa.string()))
        table = table.append_column("picture_kind", pa.array([picture.kind] * n, pa.string()))
        table = table.append_column("picture_time_s", pa.array(np.full(n, picture.time_s), pa.float64()))
        self._tracks.add(table.cast(tracks_schema()))
        self.pictures += 1

    def close(self) -> dict:
        """Flush every stream and write ``recording.json``; returns the manifest."""
        if self.closed:
            return read_manifest(self.dir)
        streams = {"plots": self._plots, "truth": self._truth, "tracks": self._tracks}
        for s in streams.values():
            if s is not None:
                s.close()
        manifest = {
            "format": "siap-recording",
            "version": FORMAT_VERSION,
            **{k: v for k, v in self.metadata.items() if k != "siap.recording"},
            "files": {k: s.path.name for k, s in streams.items() if s is not None},
            "rows": {k: s.rows for k, s in streams.items() if s is not None},
            "pictures": self.pictures,
            "dropped": dict(self.dropped),
        }
        (self.dir / "recording.json").write_text(json.dumps(manifest, indent=2) + "\n")
        self.closed = True
        return manifest

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_manifest(path: str | Path) -> dict:
    """The manifest of a recording folder (InputError if it is not one)."""
    p = Path(path) / "recording.json"
    try:
        manifest = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: not a siap recording (no recording.json)") from None
    except ValueError as exc:
        raise InputError(f"{p}: not JSON ({exc})") from None
    if manifest.get("format") != "siap-recording":
        raise InputError(f"{p}: format: expected 'siap-recording'")
    return manifest


def _plots_file(path: Path) -> Path:
    if path.is_dir():
        read_manifest(path)
        return path / "plots.parquet"
    return path


def _parquet(path: Path) -> pq.ParquetFile:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        return pq.ParquetFile(str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a Parquet file ({str(exc).splitlines()[0]})") from None


def read_plot_batches(path: str | Path, *, batch_rows: int = 65_536) -> Iterator[np.ndarray]:
    """A source: the plots of a recording folder or plots Parquet file, in batches of at most
    ``batch_rows`` (PLOT_DTYPE, non-decreasing time; rows out of order are dropped, counted in
    the log). Memory: one batch at a time."""
    path = _plots_file(Path(path))
    pf = _parquet(path)
    missing = [n for n in records.PLOT_DTYPE.names if n not in pf.schema_arrow.names]
    if missing:
        raise InputError(f"{path}: column {missing[0]!r} is missing; expected a siap plots file")
    last = -np.inf
    late = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        plots = records.from_arrow(pa.Table.from_batches([batch]), records.PLOT_DTYPE)
        t = plots["time_s"]
        ok = t >= np.maximum.accumulate(np.concatenate([[last], t]))[:-1]
        if not ok.all():
            late += int((~ok).sum())
            plots = records.take(plots, ok)
        if len(plots):
            last = float(plots["time_s"][-1])
            yield plots
    if late:
        log.warning("%s: %d plots out of time order dropped", path, late)


def read_pictures(path: str | Path, *, partner: str | None = None, kind: str | None = None) -> Iterator:
    """The recorded pictures (:class:`siap.picture.Picture`), in time order, optionally of one
    partner and/or kind. Reads one row group at a time."""
    from siap.picture import Picture

    path = Path(path)
    file = path / "tracks.parquet" if path.is_dir() else path
    pf = _parquet(file)
    carry: dict[tuple[str, str, float], list[np.ndarray]] = {}
    for g in range(pf.num_row_groups):
        table = pf.read_row_group(g)
        pp = np.asarray(table.column("picture_partner").to_pylist(), dtype=object)
        pk = np.asarray(table.column("picture_kind").to_pylist(), dtype=object)
        pt = table.column("picture_time_s").to_numpy()
        rows = records.from_arrow(table.drop_columns([n for n, _ in PICTURE_COLUMNS]), records.TRACK_DTYPE)
        keep = np.ones(len(rows), bool)
        if partner is not None:
            keep &= pp == partner
        if kind is not None:
            keep &= pk == kind
        pp, pk, pt, sel = pp[keep], pk[keep], pt[keep], records.take(rows, keep)
        # a picture's rows are contiguous: split where the picture changes
        change = np.flatnonzero((pp[1:] != pp[:-1]) | (pk[1:] != pk[:-1]) | (pt[1:] != pt[:-1])) + 1
        for lo, hi in zip(np.concatenate([[0], change]), np.concatenate([change, [len(sel)]]), strict=True):
            if hi <= lo:
                continue
            key = (str(pp[lo]), str(pk[lo]), float(pt[lo]))
            if carry and key not in carry:  # the previous picture is complete
                (done, parts), = carry.items()
                yield Picture(done[0], done[2], records.concatenate(parts), done[1])
                carry.clear()
            carry.setdefault(key, []).append(sel[lo:hi])
    for key, parts in carry.items():
        yield Picture(key[0], key[2], records.concatenate(parts), key[1])


def replay_source(path: str | Path, *, receiver=None, start_time_s: float | None = None,
                  batch_rows: int = 65_536) -> Iterator[np.ndarray]:
    """A source of plot batches from a recording folder, a plots Parquet file, or a Mode S file
    (``.bin`` Beast, ``.avr``, ``.jsonl[.gz]``; needs ``receiver``, a
    :class:`siap.formats.modes.ReceiverConfig`). The runtime paces it (real time or xN)."""
    p = Path(path)
    if p.is_dir() or p.suffix == ".parquet":
        return read_plot_batches(p, batch_rows=batch_rows)
    from siap.formats import modes

    try:
        modes.file_kind(p)
    except ValueError as exc:
        raise InputError(f"{exc}; or a recording folder / .parquet") from None
    if receiver is None:
        raise InputError(f"{p}: a Mode S file needs a receiver (position and id) to replay")
    if not p.exists():
        raise InputError(f"{p}: no such file")
    return modes.file_source(p, receiver, start_time_s=start_time_s)
