"""siap's ASTERIX decoder against libasterix (the independent reference) on every real record
we have and on hypothesis-generated records that libasterix encodes; capture reading; time of
day."""

from __future__ import annotations

import struct
from pathlib import Path

import asterix.generated as gen
import numpy as np
import pytest
from asterix_reference import assert_equal_tables, reference_decode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siap.formats.asterix import decode, read_payloads, resolve_time_of_day
from siap.formats.asterix.capture import read_pcapng

DATA = Path(__file__).parent / "data"
PCAP = DATA / "cat_034_048.pcap"


def _reference_per_packet(p):
    ref = {48: [], 34: [], 21: []}
    for s, e in p.segments:
        d = reference_decode(p.data[s:e])
        for c in ref:
            ref[c].append(d[c])
    return {c: np.concatenate(v) for c, v in ref.items()}


def test_real_capture_equals_libasterix_record_by_record():
    p = read_payloads(PCAP)
    assert len(p) == 100 and not p.skipped
    d = decode(p.data, p.segments, p.time_s)
    assert d.counts == {"cat048": 128, "cat034": 34, "cat021": 0}
    assert len(d.errors) == 0
    ref = _reference_per_packet(p)
    assert_equal_tables(d.cat048, ref[48], 48)
    assert_equal_tables(d.cat034, ref[34], 34)
    # the capture is from 2016-05-05: every time of day lands on its packet's day, within a minute
    seg_t = p.time_s[d.cat048["segment"]]
    assert np.all(np.abs(d.cat048["time_s"] - seg_t) < 60.0)


def test_capture_payloads_exclude_ethernet_padding():
    """12 short packets carry Ethernet padding after the UDP payload: taking the payload by a
    fixed header size instead of the UDP length feeds the padding to the decoder."""
    raw = PCAP.read_bytes()
    naive, p_ = [], 24
    while p_ < len(raw):
        incl = struct.unpack_from("<I", raw, p_ + 8)[0]
        naive.append(raw[p_ + 16 + 42 : p_ + 16 + incl])
        p_ += 16 + incl
    p = read_payloads(PCAP)
    ours = [p.data[s:e] for s, e in p.segments]
    padded = [i for i, (a, b) in enumerate(zip(naive, ours, strict=True)) if a != b]
    assert len(padded) == 12
    assert all(naive[i].startswith(ours[i]) for i in padded)
    bad = decode(b"".join(naive), _segs(naive), log=False)
    assert len(bad.errors) > 0  # the padding is reported, not silently decoded


def _segs(chunks):
    end = np.cumsum([len(c) for c in chunks])
    return np.stack([end - [len(c) for c in chunks], end], axis=1)


def test_raw_files_equal_libasterix():
    for name, cat in (("cat048.raw", 48), ("cat034.raw", 34)):
        data = (DATA / name).read_bytes()
        d = decode(data)
        ref = reference_decode(data)
        table = {48: d.cat048, 34: d.cat034}[cat]
        assert len(table) == 1
        assert_equal_tables(table, ref[cat], cat)


def _write_pcapng(path: Path, packets: list[tuple[float, bytes]]) -> None:
    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    tsresol = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)  # nanoseconds
    out += block(1, struct.pack("<HHI", 1, 0, 65535) + tsresol)
    for t, frame in packets:
        ns = int(round(t * 1e9))
        out += block(6, struct.pack("<IIIII", 0, ns >> 32, ns & 0xFFFFFFFF, len(frame), len(frame)) + frame)
    path.write_bytes(out)


def test_pcapng_gives_the_same_payloads_as_pcap(tmp_path):
    raw = PCAP.read_bytes()
    packets, p_ = [], 24
    while p_ < len(raw):
        sec, usec, incl, _ = struct.unpack_from("<IIII", raw, p_)
        packets.append((sec + usec * 1e-6, raw[p_ + 16 : p_ + 16 + incl]))
        p_ += 16 + incl
    _write_pcapng(tmp_path / "x.pcapng", packets)
    a, b = read_payloads(PCAP), read_pcapng(tmp_path / "x.pcapng")
    assert a.data == b.data
    np.testing.assert_array_equal(a.segments, b.segments)
    np.testing.assert_allclose(a.time_s, b.time_s, atol=1e-6)


def test_time_of_day_rolls_over_midnight():
    midnight = 1_700_006_400.0  # 2023-11-15 00:00 UTC
    tod = np.array([86399.0, 86399.5, 0.25, 1.0, 86399.9, 2.0])  # one late record before midnight
    t = resolve_time_of_day(tod, np.full(6, np.nan), first_ref_s=midnight - 43200.0)
    expected = midnight - 86400.0 + np.array([86399.0, 86399.5, 86400.25, 86401.0, 86399.9, 86402.0])
    np.testing.assert_allclose(t, expected)
    # with capture times: each record takes the day nearest its packet
    ref = np.array([midnight - 1, midnight - 0.5, midnight + 0.3, midnight + 1, midnight + 1, midnight + 2])
    np.testing.assert_allclose(resolve_time_of_day(tod, ref), expected)
    assert np.isnan(resolve_time_of_day(np.array([90000.0]), np.array([midnight]))[0])


# ---- generated records, encoded by libasterix ----------------------------------------------

ICAO_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "


def _icao6(text: str) -> int:
    v = 0
    for ch in text:
        v = (v << 6) | (ord(ch) - 64 if ch.isalpha() else ord(ch))
    return v


def u(bits):
    return st.integers(0, (1 << bits) - 1)


callsign = st.text(ICAO_CHARS, min_size=8, max_size=8).map(_icao6)
ext = st.lists(u(7), min_size=1, max_size=3).map(tuple)

CAT048_ITEMS = {
    "010": u(16), "140": u(24), "020": ext, "040": u(32), "070": u(16), "090": u(16),
    "130": st.dictionaries(st.sampled_from(["SRL", "SRR", "SAM", "PRL", "PAM", "RPD", "APD"]), u(8), min_size=1),
    "220": u(24), "240": callsign, "250": st.lists(u(64), max_size=3), "161": u(12), "042": u(32),
    "200": u(32), "170": st.lists(u(7), min_size=1, max_size=2).map(tuple), "210": u(32),
    "030": st.lists(u(7), min_size=1, max_size=3), "080": u(12), "100": u(32), "110": u(14),
    "120": st.fixed_dictionaries({}, optional={"CAL": u(16), "RDS": st.lists(u(48), max_size=2)}).filter(bool),
    "230": u(16), "260": u(56), "055": u(8), "050": u(16), "065": u(5), "060": u(12),
    "SP": st.binary(max_size=4).map(lambda b: b), "RE": st.binary(max_size=4),
}  # fmt: skip

CAT021_ITEMS = {
    "010": u(16), "040": ext, "161": u(12), "015": u(8), "071": u(24), "130": u(48), "131": u(64),
    "072": u(24), "150": u(16), "151": u(16), "080": u(24), "073": u(24), "074": u(32), "075": u(24),
    "076": u(32), "140": u(16), "090": st.lists(u(7), min_size=1, max_size=4).map(tuple), "210": u(7),
    "070": u(12), "230": u(16), "145": u(16), "152": u(16), "200": u(8), "155": u(16), "157": u(16),
    "160": u(32), "165": u(10), "077": u(24), "170": callsign, "020": u(8),
    "220": st.dictionaries(st.sampled_from(["WS", "WD", "TMP"]), u(16), min_size=1),
    "146": u(16), "148": u(16), "016": u(8), "008": u(8), "271": st.lists(u(7), min_size=1, max_size=2).map(tuple),
    "132": u(8), "250": st.lists(u(64), max_size=2), "260": u(56), "400": u(8),
    "295": st.dictionaries(st.sampled_from(["AOS", "TRD", "M3A", "QI", "GH", "FL", "SCC"]), u(8), min_size=1),
    "110": st.fixed_dictionaries({}, optional={"TIS": st.tuples(u(7)), "TID": st.lists(u(120), max_size=2)}).filter(bool),
    "RE": st.binary(max_size=4), "SP": st.binary(max_size=4),
}  # fmt: skip


def _records(items: dict, spec):
    rec = st.fixed_dictionaries({}, optional=items).filter(bool)
    return st.lists(st.lists(rec, min_size=1, max_size=4), min_size=1, max_size=3).map(
        lambda blocks: b"".join(spec.create([spec.cv_record.create(r) for r in b]).unparse().to_bytes() for b in blocks)
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_records(CAT048_ITEMS, gen.Cat_048_1_32))
def test_generated_cat048_equals_libasterix(data):
    d = decode(data, log=False)
    assert len(d.errors) == 0
    assert_equal_tables(d.cat048, reference_decode(data)[48], 48)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_records(CAT021_ITEMS, gen.Cat_021_2_6))
def test_generated_cat021_equals_libasterix(data):
    d = decode(data, log=False)
    assert len(d.errors) == 0
    assert_equal_tables(d.cat021, reference_decode(data)[21], 21)


@pytest.mark.parametrize("name", ["cat048.raw", "cat034.raw"])
def test_streaming_leaves_a_cut_block_for_the_next_call(name):
    data = (DATA / name).read_bytes()
    head = decode(data[:10], final=False)
    assert head.consumed == 0 and len(head.errors) == 0
    whole = decode(data[head.consumed :])
    assert sum(whole.counts.values()) == 1


def _packets(path: Path) -> list[tuple[int, int, bytes]]:
    raw = path.read_bytes()
    out, p_ = [], 24
    while p_ < len(raw):
        sec, usec, incl, _ = struct.unpack_from("<IIII", raw, p_)
        out.append((sec, usec, raw[p_ + 16 : p_ + 16 + incl]))
        p_ += 16 + incl
    return out


def test_big_endian_nanosecond_pcap_with_vlan_tags(tmp_path):
    """The same capture rewritten big-endian, nanosecond-stamped, every frame 802.1Q tagged."""
    out = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    for sec, usec, frame in _packets(PCAP):
        tagged = frame[:12] + b"\x81\x00\x00\x07" + frame[12:]
        out += struct.pack(">IIII", sec, usec * 1000, len(tagged), len(tagged)) + tagged
    (tmp_path / "be.pcap").write_bytes(out)
    a, b = read_payloads(PCAP), read_payloads(tmp_path / "be.pcap")
    assert a.data == b.data
    np.testing.assert_array_equal(a.segments, b.segments)
    np.testing.assert_allclose(a.time_s, b.time_s, atol=1e-9, rtol=0)


def test_non_udp_packets_are_skipped_and_counted(tmp_path):
    pk = _packets(PCAP)
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i, (sec, usec, frame) in enumerate(pk):
        if i == 3:
            frame = frame[:23] + b"\x06" + frame[24:]  # IPv4 protocol: TCP
        out += struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame
    (tmp_path / "x.pcap").write_bytes(bytes(out))
    p = read_payloads(tmp_path / "x.pcap")
    assert len(p) == len(pk) - 1 and p.skipped == {"not_udp": 1}
