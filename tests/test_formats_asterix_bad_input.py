"""Bad ASTERIX input: the bad block or record is dropped, counted and reported with its byte
offset; everything else is decoded. Hypothesis fuzzes the decoder; the regression corpus in
tests/data/fuzz/asterix holds inputs kept for re-checking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siap.formats.asterix import decode, read_payloads
from siap.formats.asterix.framing import ERRORS

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "fuzz" / "asterix"
REC48 = (DATA / "cat048.raw").read_bytes()  # one 48-octet CAT048 block, one record
REC34 = (DATA / "cat034.raw").read_bytes()  # one 16-octet CAT034 block


def _codes(d) -> list[str]:
    return [ERRORS[c] for c in d.errors["code"]]


def test_truncated_block_at_the_end_is_dropped_and_the_rest_decoded():
    d = decode(REC48 + REC34 + REC48[:20], log=False)
    assert d.counts == {"cat048": 1, "cat034": 1, "cat021": 0}
    assert _codes(d) == ["block_truncated"]
    assert d.errors["offset"][0] == len(REC48) + len(REC34)


def test_wrong_length_resynchronises_on_the_next_block():
    bad = bytearray(REC48)
    bad[1:3] = (500).to_bytes(2, "big")  # LEN beyond the end
    d = decode(REC34 + bytes(bad) + REC34 + REC48, log=False)
    assert d.counts["cat034"] == 2 and d.counts["cat048"] == 1
    assert _codes(d) == ["block_truncated"]
    assert d.errors["offset"][0] == len(REC34) and d.errors["nbytes"][0] == len(REC48)


def test_length_too_short():
    d = decode(b"\x30\x00\x02" + REC48, log=False)
    assert d.counts["cat048"] == 1 and _codes(d) == ["block_too_short"]


def test_unknown_category_is_skipped_by_its_length():
    d = decode(REC34 + b"\x3e\x00\x06abc" + REC48, log=False)
    assert d.counts["cat034"] == 1 and d.counts["cat048"] == 1
    assert _codes(d) == ["unknown_category"] and d.errors["offset"][0] == len(REC34)


def test_bad_fspec_drops_the_rest_of_its_block_only():
    two = REC48[:3] + REC48[3:] + REC48[3:]
    two = bytes([48]) + (3 + 2 * (len(REC48) - 3)).to_bytes(2, "big") + two[3:]
    ok = decode(two)
    assert ok.counts["cat048"] == 2
    # second record: an FSPEC whose FX chain runs past the UAP's 4 octets
    bad = bytearray(two)
    second = len(REC48)
    bad[second : second + 5] = b"\xff\xff\xff\xff\xff"
    d = decode(bytes(bad) + REC34, log=False)
    assert d.counts == {"cat048": 1, "cat034": 1, "cat021": 0}
    assert _codes(d) == ["fspec_overrun"] and d.errors["offset"][0] == second


def test_spare_frn_and_empty_fspec():
    # CAT021 FRN 43 is spare: FSPEC octets 1-6 with FX, 7th with bit FRN 43 set
    rec = bytes([0x81, 0x01, 0x01, 0x01, 0x01, 0x01, 0x80]) + b"\x01\x02"
    d = decode(bytes([21, 0, 3 + len(rec)]) + rec + REC34, log=False)
    assert _codes(d) == ["spare_item"] and d.counts["cat034"] == 1
    d = decode(bytes([48, 0, 5, 0x00, 0x00]) + REC34, log=False)
    assert _codes(d) == ["empty_record"] and d.counts["cat034"] == 1


def test_item_running_past_the_block():
    bad = bytearray(REC48)
    bad[1:3] = (len(REC48) - 4).to_bytes(2, "big")  # block ends inside the record's last item
    d = decode(bytes(bad[: len(REC48) - 4]) + REC34, log=False)
    assert _codes(d) == ["item_overrun"] and d.counts["cat034"] == 1


def test_garbage_between_blocks():
    garbage = bytes(range(200, 256)) * 3
    d = decode(REC48 + garbage + REC34 + REC48, log=False)
    assert d.counts["cat048"] == 2 and d.counts["cat034"] == 1
    skipped = int(d.errors["nbytes"].sum())
    assert skipped == len(garbage)


def test_every_drop_is_logged_with_its_offset(caplog):
    d = decode(REC48 + b"\x30\x00\x02", log=True)
    assert len(d.errors) == 1
    assert f"offset {len(REC48)}" in caplog.text and "block_too_short" in caplog.text


def _check_sane(data: bytes, d) -> None:
    n = len(data)
    for t in (d.cat048, d.cat034, d.cat021):
        assert np.all((t["offset"] >= 0) & (t["offset"] < n))
    assert np.all((d.errors["offset"] >= 0) & (d.errors["offset"] < n))
    assert np.all(d.errors["nbytes"] >= 1)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_random_bytes_never_raise(data):
    d = decode(data, log=False)
    _check_sane(data, d)


def _stream() -> bytes:
    p = read_payloads(DATA / "cat_034_048.pcap")
    return p.data


STREAM = _stream()
CLEAN = decode(STREAM)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pos=st.integers(0, len(STREAM) - 1), junk=st.binary(min_size=1, max_size=16), mode=st.sampled_from(["overwrite", "insert", "cut"]))
def test_fuzz_mutated_real_stream(pos, junk, mode):
    """Damage the real stream at ``pos``: no exception, and every record before the damaged
    block decodes exactly as before."""
    if mode == "overwrite":
        data = STREAM[:pos] + junk + STREAM[pos + len(junk) :]
    elif mode == "insert":
        data = STREAM[:pos] + junk + STREAM[pos:]
    else:
        data = STREAM[:pos] + STREAM[pos + len(junk) :]
    d = decode(data, log=False)
    _check_sane(data, d)
    for clean, got in ((CLEAN.cat048, d.cat048), (CLEAN.cat034, d.cat034)):
        # blocks wholly before pos are untouched: find the last block start before pos
        before = clean[clean["offset"] < _block_start_before(pos)]
        got_before = got[got["offset"] < _block_start_before(pos)]
        assert len(got_before) == len(before)
        for name in ("offset", "sac", "sic", "tod_s"):
            np.testing.assert_array_equal(got_before[name], before[name])


_STARTS = []
_p = 0
while _p < len(STREAM):
    _STARTS.append(_p)
    _p += int.from_bytes(STREAM[_p + 1 : _p + 3], "big")
_STARTS = np.array(_STARTS)


def _block_start_before(pos: int) -> int:
    return int(_STARTS[np.searchsorted(_STARTS, pos, side="right") - 1])


def test_regression_corpus():
    """Every input kept in the corpus decodes without raising and reports sane offsets."""
    files = sorted(CORPUS.glob("*.bin"))
    assert files, "the regression corpus is empty"
    for f in files:
        data = f.read_bytes()
        _check_sane(data, decode(data, log=False))


def _cat021_stream() -> bytes:
    from siap.formats.asterix import CAT021_DTYPE, encode_cat021

    rng = np.random.default_rng(5)
    n = 60
    t = np.zeros(n, CAT021_DTYPE)
    t["sac"], t["sic"] = 1, 2
    t["tod_s"] = t["tod_position_s"] = np.sort(rng.uniform(0, 86000, n))
    t["tod_reception_s"] = np.where(rng.random(n) < 0.5, t["tod_position_s"], np.nan)
    t["lat_deg"], t["lon_deg"], t["high_res"] = rng.uniform(-80, 80, n), rng.uniform(-180, 180, n), rng.integers(0, 2, n)
    t["geometric_height_m"] = np.where(rng.random(n) < 0.5, rng.uniform(0, 12000, n), np.nan)
    t["flight_level"] = rng.integers(-10, 1600, n) / 4
    t["mode_s_address"] = rng.integers(-1, 1 << 24, n)
    t["mode_3a"] = rng.integers(-1, 0o10000, n)
    t["callsign"] = np.frombuffer(b"QFA12   " * n, np.uint8).reshape(n, 8)
    t["track_number"] = rng.integers(-1, 4096, n)
    t["nic"], t["nacp"] = rng.integers(-1, 12, n), rng.integers(-1, 12, n)
    t["ground_speed_mps"], t["track_angle_rad"] = rng.uniform(0, 300, n), rng.uniform(0, 6.28, n)
    t["baro_vertical_rate_mps"] = np.where(rng.random(n) < 0.5, rng.uniform(-20, 20, n), np.nan)
    return b"".join(encode_cat021(t, max_block_bytes=300))


STREAM21 = _cat021_stream()
CLEAN21 = decode(STREAM21)
_STARTS21 = []
_p = 0
while _p < len(STREAM21):
    _STARTS21.append(_p)
    _p += int.from_bytes(STREAM21[_p + 1 : _p + 3], "big")
_STARTS21 = np.array(_STARTS21)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pos=st.integers(0, len(STREAM21) - 1), junk=st.binary(min_size=1, max_size=16), mode=st.sampled_from(["overwrite", "insert", "cut"]))
def test_fuzz_mutated_cat021_stream(pos, junk, mode):
    """As test_fuzz_mutated_real_stream, on a CAT021 stream written by siap's encoder."""
    assert CLEAN21.counts["cat021"] == 60 and len(CLEAN21.errors) == 0
    if mode == "overwrite":
        data = STREAM21[:pos] + junk + STREAM21[pos + len(junk) :]
    elif mode == "insert":
        data = STREAM21[:pos] + junk + STREAM21[pos:]
    else:
        data = STREAM21[:pos] + STREAM21[pos + len(junk) :]
    d = decode(data, log=False)
    _check_sane(data, d)
    start = int(_STARTS21[np.searchsorted(_STARTS21, pos, side="right") - 1])
    before, got = CLEAN21.cat021[CLEAN21.cat021["offset"] < start], d.cat021[d.cat021["offset"] < start]
    assert len(got) == len(before)
    for name in ("offset", "lat_deg", "lon_deg", "mode_s_address", "nacp"):
        np.testing.assert_array_equal(got[name], before[name])


def test_cat021_stream_written_by_siap_reads_the_same_in_libasterix():
    from asterix_reference import assert_equal_tables, reference_decode

    assert_equal_tables(CLEAN21.cat021, reference_decode(STREAM21)[21], 21)


def test_blocks_of_two_octet_records():
    """Regression: records of two octets (FSPEC + I034/000) once overflowed the output arrays,
    sized for three octets a record (memory corruption, found by review; corpus
    crash_two_octet_records_*.bin)."""
    recs = b"\x40\x01" * 2000
    block = bytes([34]) + (3 + len(recs)).to_bytes(2, "big") + recs
    d = decode(block)
    assert d.counts["cat034"] == 2000 and np.all(d.cat034["message_type"] == 1)
    d = decode(b"\x30\xff\xff" + block + block, log=False)  # found again after resynchronising
    assert d.counts["cat034"] == 4000 and d.error_counts() == {"block_truncated": 1}
