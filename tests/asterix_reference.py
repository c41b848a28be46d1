"""libasterix (MIT, pure Python) as the independent reference for siap's ASTERIX decoder:
the same field tables as ``siap.formats.asterix.decode``, filled from libasterix's parse."""

from __future__ import annotations

import math

import asterix.generated as gen
import numpy as np
from asterix.base import Bits, RawDatablock

from siap.formats.asterix.decode import CAT021_DTYPE, CAT034_DTYPE, CAT048_DTYPE, FT_M, NM_M

SPECS = {48: gen.Cat_048_1_32, 34: gen.Cat_034_1_29, 21: gen.Cat_021_2_6}
DTYPES = {48: CAT048_DTYPE, 34: CAT034_DTYPE, 21: CAT021_DTYPE}
DEG = math.pi / 180.0


def _q(v) -> float:
    c = v.variation.content
    return c.as_quantity(c.cv_unit)


def _sub(rec, item, sub):
    i = rec.get_item(item)
    return None if i is None else i.variation.get_item(sub)


def _cs(s: str) -> list[int]:
    return list(s.encode("ascii").ljust(8, b" ")[:8])


def _row48(rec, r):
    r["typ"] = r["sim"] = r["rdp"] = r["spi"] = r["rab"] = r["tst"] = -1
    i = rec.get_item("020")
    if i is not None:
        for k in ("TYP", "SIM", "RDP", "SPI", "RAB", "TST"):
            s = i.variation.get_item(k)
            if s is not None:
                r[k.lower()] = s.as_uint()
    i = rec.get_item("140")
    r["tod_s"] = _q(i) if i is not None else np.nan
    if rec.get_item("040") is not None:
        r["range_m"] = _q(_sub(rec, "040", "RHO")) * NM_M
        r["azimuth_rad"] = _q(_sub(rec, "040", "THETA")) * DEG
    else:
        r["range_m"] = r["azimuth_rad"] = np.nan
    r["mode_3a"] = r["mode_3a_v"] = r["mode_3a_g"] = r["mode_3a_l"] = -1
    if rec.get_item("070") is not None:
        r["mode_3a"] = int(_sub(rec, "070", "MODE3A").variation.content.as_string(), 8)
        for k in "VGL":
            r[f"mode_3a_{k.lower()}"] = _sub(rec, "070", k).as_uint()
    r["fl_v"] = r["fl_g"] = -1
    r["flight_level"] = np.nan
    if rec.get_item("090") is not None:
        r["flight_level"] = _q(_sub(rec, "090", "FL"))
        r["fl_v"], r["fl_g"] = _sub(rec, "090", "V").as_uint(), _sub(rec, "090", "G").as_uint()
    i = rec.get_item("220")
    r["mode_s_address"] = i.as_uint() if i is not None else -1
    i = rec.get_item("240")
    r["callsign"] = _cs(i.variation.content.as_string()) if i is not None else [0] * 8
    i = rec.get_item("161")
    r["track_number"] = _sub(rec, "161", "TRN").as_uint() if i is not None else -1
    if rec.get_item("200") is not None:
        r["ground_speed_mps"] = _q(_sub(rec, "200", "GSP")) * NM_M
        r["heading_rad"] = _q(_sub(rec, "200", "HDG")) * DEG
    else:
        r["ground_speed_mps"] = r["heading_rad"] = np.nan
    r["height_3d_m"] = _q(_sub(rec, "110", "3DH")) * FT_M if rec.get_item("110") is not None else np.nan


def _row34(rec, r):
    i = rec.get_item("000")
    r["message_type"] = i.as_uint() if i is not None else -1
    i = rec.get_item("030")
    r["tod_s"] = _q(i) if i is not None else np.nan
    i = rec.get_item("020")
    r["sector_azimuth_rad"] = _q(i) * DEG if i is not None else np.nan
    i = rec.get_item("041")
    r["antenna_period_s"] = _q(i) if i is not None else np.nan
    if rec.get_item("120") is not None:
        r["site_alt_m"] = _q(_sub(rec, "120", "HGT"))
        r["site_lat_deg"] = _q(_sub(rec, "120", "LAT"))
        r["site_lon_deg"] = _q(_sub(rec, "120", "LON"))
    else:
        r["site_alt_m"] = r["site_lat_deg"] = r["site_lon_deg"] = np.nan


def _row21(rec, r):
    i = rec.get_item("161")
    r["track_number"] = _sub(rec, "161", "TRNUM").as_uint() if i is not None else -1
    i = rec.get_item("071")
    r["tod_position_s"] = _q(i) if i is not None else np.nan
    i = rec.get_item("073")
    r["tod_reception_s"] = _q(i) if i is not None else np.nan
    r["tod_s"] = r["tod_position_s"] if rec.get_item("071") is not None else r["tod_reception_s"]
    r["high_res"] = 0
    if rec.get_item("131") is not None:
        r["high_res"] = 1
        r["lat_deg"], r["lon_deg"] = _q(_sub(rec, "131", "LAT")), _q(_sub(rec, "131", "LON"))
    elif rec.get_item("130") is not None:
        r["lat_deg"], r["lon_deg"] = _q(_sub(rec, "130", "LAT")), _q(_sub(rec, "130", "LON"))
    else:
        r["lat_deg"] = r["lon_deg"] = np.nan
    i = rec.get_item("080")
    r["mode_s_address"] = i.as_uint() if i is not None else -1
    i = rec.get_item("140")
    r["geometric_height_m"] = _q(i) * FT_M if i is not None else np.nan
    r["nic"] = r["nacp"] = -1
    i = rec.get_item("090")
    if i is not None:
        r["nic"] = i.variation.get_item("NUCPNIC").as_uint()
        s = i.variation.get_item("NACP")
        if s is not None:
            r["nacp"] = s.as_uint()
    i = rec.get_item("070")
    r["mode_3a"] = int(_sub(rec, "070", "MODE3A").variation.content.as_string(), 8) if i is not None else -1
    i = rec.get_item("145")
    r["flight_level"] = _q(i) if i is not None else np.nan
    i = rec.get_item("155")
    r["baro_vertical_rate_mps"] = _q(_sub(rec, "155", "BVR")) * FT_M / 60.0 if i is not None else np.nan
    if rec.get_item("160") is not None:
        r["ground_speed_mps"] = _q(_sub(rec, "160", "GS")) * NM_M
        r["track_angle_rad"] = _q(_sub(rec, "160", "TA")) * DEG
    else:
        r["ground_speed_mps"] = r["track_angle_rad"] = np.nan
    i = rec.get_item("170")
    r["callsign"] = _cs(i.variation.content.as_string()) if i is not None else [0] * 8


ROWS = {48: _row48, 34: _row34, 21: _row21}


def reference_decode(data: bytes) -> dict[int, np.ndarray]:
    """Every CAT048/034/021 record of ``data`` (whole, valid data blocks) decoded by libasterix."""
    out: dict[int, list] = {48: [], 34: [], 21: []}
    dbs = RawDatablock.parse(Bits.from_bytes(data))
    if isinstance(dbs, ValueError):
        raise dbs
    for db in dbs:
        cat = db.get_category()
        if cat not in SPECS:
            continue
        recs = SPECS[cat].cv_uap.parse(db.get_raw_records())
        if isinstance(recs, ValueError):
            raise recs
        for rec in recs:
            r = np.zeros(1, DTYPES[cat])[0]
            i = rec.get_item("010")
            r["sac"] = _sub(rec, "010", "SAC").as_uint() if i is not None else -1
            r["sic"] = _sub(rec, "010", "SIC").as_uint() if i is not None else -1
            ROWS[cat](rec, r)
            out[cat].append(r)
    return {c: np.array(v, dtype=DTYPES[c]) for c, v in out.items()}


COMPARED = {
    c: [n for n in DTYPES[c].names if n not in ("offset", "segment", "seq", "time_s")] for c in DTYPES
}


def assert_equal_tables(ours: np.ndarray, ref: np.ndarray, cat: int) -> None:
    """Field by field equality (floats to 1e-9 relative, NaN equal to NaN)."""
    assert len(ours) == len(ref), f"CAT{cat:03d}: {len(ours)} records, libasterix {len(ref)}"
    for name in COMPARED[cat]:
        a, b = ours[name], ref[name]
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=f"CAT{cat:03d} {name}")
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"CAT{cat:03d} {name}")
