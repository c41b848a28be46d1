"""siap.tracking.output: the encoded text fields of snapshot records, against known answers."""

from __future__ import annotations

import numpy as np

from siap.records import TRACK_DTYPE
from siap.tracking.output import SnapshotTexts, new_track_records, write_text_fields


def test_snapshot_texts_encode_partner_label_sources_and_sensors_once_per_sensor_set():
    names = ["r2", "adsb1", "r1"]
    texts = SnapshotTexts("JPN", "JPN//REL USA", names)
    masks = np.array([[0b101], [0b011], [0b101]], np.uint64)
    rows = texts.rows(masks)
    assert rows.tolist() == [1, 0, 1]  # distinct masks in sorted order, repeats share a row
    assert len(texts) == 2
    callsign = np.array(["JAL1", "ANA22"], TRACK_DTYPE["callsign"])
    out = new_track_records(3)
    write_text_fields(out, callsign, np.array([1, 0, 1]), texts.table, rows)
    assert out["callsign"].tolist() == ["ANA22", "JAL1", "ANA22"]
    assert out["partner"].tolist() == ["JPN"] * 3
    assert out["label"].tolist() == ["JPN//REL USA"] * 3
    # sources: registration order; sensors: sorted
    assert out["sources"].tolist() == ["r2,r1", "r2,adsb1", "r2,r1"]
    assert out["sensors"].tolist() == ["r1,r2", "adsb1,r2", "r1,r2"]
    names.append("late")  # the tracker's list grows; a new mask is encoded on demand
    assert texts.rows(np.array([[0b1000]], np.uint64)).tolist() == [2]
    texts.forget()
    assert len(texts) == 0 and texts.table.shape[0] == 0


def test_snapshot_texts_cut_long_sensor_lists():
    names = [f"sensor{i:02d}" for i in range(20)]
    texts = SnapshotTexts("AUS", "AUS", names)
    out = new_track_records(1)
    rows = texts.rows(np.array([[(1 << 20) - 1]], np.uint64))
    write_text_fields(out, np.array([""], TRACK_DTYPE["callsign"]), np.array([0]), texts.table,
                      rows)
    src = out["sources"][0]
    assert src.endswith(",...") and len(src) <= 64
    assert src.startswith("sensor00,sensor01,")
    sens = out["sensors"][0]
    assert sens.endswith(",+") and len(sens) <= TRACK_DTYPE["sensors"].itemsize // 4
