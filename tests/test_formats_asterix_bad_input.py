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
