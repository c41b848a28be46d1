"""Snapshot output: TRACK_DTYPE records of a track table, and the text fields of those records.

A snapshot is written straight into uninitialised records: the numeric fields by the compiled
prediction (:func:`.kernels.output.snapshot_states`), the text fields (callsign, partner, label,
sources, sensors) by one pass of byte copies (:func:`.kernels.output.fill_text`): the callsign
from the track table, the rest from an encoded template per distinct set of sensors, kept in
:class:`SnapshotTexts`. The partner and the label are written there, once per template.
"""

from __future__ import annotations

import numpy as np

from siap.records import TRACK_DTYPE

from .kernels.output import fill_text

__all__ = ["SnapshotTexts", "new_track_records", "write_text_fields", "MAX_TEXT_ROWS"]

_SENSORS_LEN = TRACK_DTYPE["sensors"].itemsize // 4
_SET_FIELDS = {
    "time_s", "track_id", "status", "pos_ecef_m", "vel_ecef_mps", "cov_ecef", "lat_deg",
    "lon_deg", "alt_m", "model_prob", "n_updates", "mode_s_address", "mode_3a", "callsign",
    "partner", "label", "sources", "sensors",
}  # fmt: skip
_UNSET_FIELDS = [f for f in TRACK_DTYPE.names if f not in _SET_FIELDS]
# The text fields lie at the end of a TRACK_DTYPE record, callsign first: the snapshot writes
# them as bytes in one compiled pass, the callsign from the track table and the rest from one
# encoded template per distinct (partner, label, sources, sensors).
_TEXT_FIELDS = ("callsign", "partner", "label", "sources", "sensors")
TEXT_OFFSET = TRACK_DTYPE.fields["callsign"][1]
TAIL_DTYPE = np.dtype([(f, TRACK_DTYPE[f]) for f in _TEXT_FIELDS[1:]])
if (
    TRACK_DTYPE.names[-len(_TEXT_FIELDS) :] != _TEXT_FIELDS
    or TEXT_OFFSET + TRACK_DTYPE["callsign"].itemsize + TAIL_DTYPE.itemsize
    != TRACK_DTYPE.itemsize
):
    raise ImportError("siap.tracking.output: TRACK_DTYPE must end with the text fields "
                      f"{_TEXT_FIELDS}, unpadded")
MAX_TEXT_ROWS = 1 << 16  # encoded snapshot texts kept (distinct sensor sets)


def new_track_records(k: int) -> np.ndarray:
    """``k`` TRACK_DTYPE records from raw bytes (NumPy would zero-fill a record array with text
    fields first); the fields no tracker fills (none today) are zeroed."""
    out = np.empty(k * TRACK_DTYPE.itemsize, np.uint8).view(TRACK_DTYPE)
    for f in _UNSET_FIELDS:
        out[f] = np.zeros((), TRACK_DTYPE[f])
    return out


def write_text_fields(
    out: np.ndarray, callsign: np.ndarray, sel: np.ndarray, texts: np.ndarray, rows: np.ndarray
) -> None:
    """Write the text fields of records ``out``: the callsign of track table row ``sel[p]``
    (``callsign``, the table's callsign column) and the encoded template ``texts[rows[p]]``."""
    fill_text(
        out.view(np.uint8).reshape(len(out), TRACK_DTYPE.itemsize), TEXT_OFFSET,
        callsign.view(np.uint8).reshape(len(callsign), -1), sel, texts, rows,
    )  # fmt: skip


class SnapshotTexts:
    """The text fields after the callsign (partner, label, sources, sensors) of snapshot
    records, encoded once per distinct sensor bit mask; :attr:`table` holds one row of bytes
    per mask. ``sensor_names`` is the tracker's list of sensor names by index (read, never
    written; it may grow)."""

    def __init__(self, partner: str, label: str, sensor_names: list[str]) -> None:
        self.partner = partner
        self.label = label
        self._sensor_names = sensor_names
        self._index: dict[tuple[int, ...], int] = {}
        self._list: list[np.ndarray] = []
        self.table = np.zeros((0, TAIL_DTYPE.itemsize), np.uint8)

    def __len__(self) -> int:
        return len(self._list)

    def forget(self) -> None:
        """Drop every encoded template (rows handed out before are no longer valid)."""
        self._index.clear()
        self._list.clear()
        self.table = np.zeros((0, TAIL_DTYPE.itemsize), np.uint8)

    def rows(self, masks: np.ndarray) -> np.ndarray:
        """Rows of :attr:`table` holding the encoded text fields of each sensor bit mask in
        ``masks`` (one row of uint64 words per track), encoding the masks not seen before.
        ``sources``: sensor ids in registration order, cut to 64 characters with ``,...``;
        ``sensors``: sorted ids, cut to fit the field with a trailing ``,+``."""
        if masks.shape[1] == 1:
            u1, inv = np.unique(masks[:, 0], return_inverse=True)
            keys = [(v,) for v in u1.tolist()]
        else:
            uniq, inv = np.unique(masks, axis=0, return_inverse=True)
            keys = [tuple(row) for row in uniq.tolist()]
        rows = np.empty(len(keys), np.int64)
        n_before = len(self._list)
        for r, key in enumerate(keys):
            row = self._index.get(key)
            if row is None:
                row = len(self._list)
                self._list.append(self._encode(key).view(np.uint8))
                self._index[key] = row
            rows[r] = row
        if len(self._list) > n_before:
            self.table = np.stack(self._list)
        return rows[np.asarray(inv).reshape(-1)]

    def _encode(self, key: tuple[int, ...]) -> np.ndarray:
        names = [
            self._sensor_names[w * 64 + b]
            for w in range(len(key))
            for b in range(64)
            if key[w] >> b & 1 and w * 64 + b < len(self._sensor_names)
        ]
        s = ",".join(names)
        if len(s) > 64:
            s = s[:60].rsplit(",", 1)[0] + ",..."
        names = sorted(names)
        u = ",".join(names)
        if len(u) > _SENSORS_LEN:
            kept: list[str] = []
            for nme in names:
                if len(",".join([*kept, nme, "+"])) > _SENSORS_LEN:
                    break
                kept.append(nme)
            u = ",".join([*kept, "+"])
        text = np.zeros(1, TAIL_DTYPE)
        text["partner"], text["label"] = self.partner, self.label
        text["sources"], text["sensors"] = s, u
        return text
