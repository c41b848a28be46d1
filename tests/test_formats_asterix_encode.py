"""ASTERIX out and round trips: CAT062/CAT065 written by siap decode back with libasterix to the
same tracks (to the encoding's resolution); CAT048/CAT021 written from a simulated scenario's
plots read back (from a file and over UDP loopback) as the same plots. The end-to-end path
(scenario -> CAT048/CAT021 over UDP -> the live runtime -> CAT062 over UDP) is
tests/test_runtime_end_to_end.py."""

from __future__ import annotations

import datetime as dt
import math
import socket
import threading
import time
from pathlib import Path

import asterix.generated as gen
import numpy as np
import pytest
from asterix.base import Bits, RawDatablock

from siap import geo
from siap.formats.asterix import (
    AsterixFileSource,
    AsterixUdpSource,
    Cat062Sink,
    Site,
    Sites,
    decode,
    encode_cat021,
    encode_cat048,
    plots_to_cat021,
    plots_to_cat048,
)
from siap.formats.asterix.decode import FL_M, FT_M, NM_M
from siap.picture import Picture
from siap.records import MeasurementKind, TrackStatus, empty_tracks
from siap.scenario.loader import load_scenario
from siap.simulation import simulate

DATA = Path(__file__).parent / "data"
ADSB_STEP_M = 25 * 0.3048


# ---- CAT062 / CAT065 ------------------------------------------------------------------------


def _tracks(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = empty_tracks(n)
    t["time_s"] = 1_767_225_600.0 + rng.uniform(0, 86400, n)
    t["track_id"] = rng.integers(0, 200_000, n)
    t["status"] = rng.choice([int(s) for s in TrackStatus], n)
    t["lat_deg"] = rng.uniform(-85, 85, n)
    t["lon_deg"] = rng.uniform(-180, 180, n)
    t["alt_m"] = np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0, 15000, n))
    t["pos_ecef_m"] = geo.geodetic_to_ecef(t["lat_deg"], t["lon_deg"], np.nan_to_num(t["alt_m"]))
    v_enu = np.stack([rng.uniform(-300, 300, n), rng.uniform(-300, 300, n), rng.uniform(-20, 20, n)], axis=1)
    t["vel_ecef_mps"] = np.einsum("nji,nj->ni", geo.enu_rotation(t["lat_deg"], t["lon_deg"]), v_enu)
    t["mode_3a"] = np.where(rng.random(n) < 0.7, rng.integers(0, 0o10000, n), -1)
    t["mode_s_address"] = np.where(rng.random(n) < 0.6, rng.integers(0, 1 << 24, n), -1)
    t["callsign"] = np.where(rng.random(n) < 0.5, [f"JAL{k:03d}" for k in rng.integers(0, 1000, n)], "")
    t["sensors"] = np.where(rng.random(n) < 0.5, "JPN-R1", "JPN-R1,USA-R1")
    t["partner"] = "JPN"
    return t, v_enu


def _libasterix_records(data: bytes) -> dict[int, list]:
    out: dict[int, list] = {62: [], 65: []}
    specs = {62: gen.Cat_062_1_21, 65: gen.Cat_065_1_6}
    dbs = RawDatablock.parse(Bits.from_bytes(data))
    assert not isinstance(dbs, ValueError)
    for db in dbs:
        recs = specs[db.get_category()].cv_uap.parse(db.get_raw_records())
        assert not isinstance(recs, ValueError), recs
        out[db.get_category()].extend(recs)
    return out


def _q(v):
    c = v.variation.content
    return c.as_quantity(c.cv_unit)


def test_cat062_decodes_back_with_libasterix(tmp_path):
    tracks, v_enu = _tracks(300)
    out = tmp_path / "jpn.ast"
    with Cat062Sink("JPN", sac=7, sic=9, path=out, max_block_bytes=600) as sink:
        sink.on_picture(Picture("JPN", float(tracks["time_s"].max()), tracks))
        sink.on_picture(Picture("USA", float(tracks["time_s"].max()), tracks[:5]))  # not JPN's: not sent
    recs = _libasterix_records(out.read_bytes())
    assert len(recs[62]) == len(tracks)
    assert [r.get_item("000").as_uint() for r in recs[65]] == [1, 2]  # SDPS status, end of batch
    assert recs[65][1].get_item("020").as_uint() == 0
    lsb_deg = 180.0 / 2**25
    for r, t, v in zip(recs[62], tracks, v_enu, strict=True):
        assert r.get_item("010").variation.get_item("SAC").as_uint() == 7
        assert r.get_item("040").as_uint() == t["track_id"] % 65536
        tod = _q(r.get_item("070"))
        assert abs(tod - math.fmod(t["time_s"], 86400.0)) <= 1 / 256 + 1e-9
        pos = r.get_item("105").variation
        assert abs(_q(pos.get_item("LAT")) - t["lat_deg"]) <= lsb_deg / 2 + 1e-12
        assert abs(_q(pos.get_item("LON")) - t["lon_deg"]) <= lsb_deg / 2 + 1e-12
        vel = r.get_item("185").variation
        assert abs(_q(vel.get_item("VX")) - v[0]) <= 0.125 + 1e-9
        assert abs(_q(vel.get_item("VY")) - v[1]) <= 0.125 + 1e-9
        if np.isfinite(t["alt_m"]):
            assert abs(_q(r.get_item("136")) * FL_M - t["alt_m"]) <= 0.125 * FL_M + 1e-9
            assert abs(_q(r.get_item("130")) * FT_M - t["alt_m"]) <= 3.125 * FT_M + 1e-9
        else:
            assert r.get_item("136") is None and r.get_item("130") is None
        if t["mode_3a"] >= 0:
            assert int(r.get_item("060").variation.get_item("MODE3A").variation.content.as_string(), 8) == t["mode_3a"]
        else:
            assert r.get_item("060") is None
        i380 = r.get_item("380")
        adr = i380.variation.get_item("ADR") if i380 is not None else None
        ident = i380.variation.get_item("ID") if i380 is not None else None
        assert (adr.as_uint() if adr is not None else -1) == t["mode_s_address"]
        assert (ident.variation.content.as_string().strip() if ident is not None else "") == t["callsign"]
        st = r.get_item("080").variation
        assert st.get_item("CNF").as_uint() == (t["status"] == TrackStatus.TENTATIVE)
        assert st.get_item("MON").as_uint() == ("," not in t["sensors"])
        tse = st.get_item("TSE")
        assert (tse.as_uint() if tse is not None else 0) == (t["status"] == TrackStatus.DELETED)
        cst = st.get_item("CST")
        assert (cst.as_uint() if cst is not None else 0) == (t["status"] == TrackStatus.COASTING)


def test_cat062_over_udp_carries_the_same_blocks_as_the_file(tmp_path):
    tracks, _ = _tracks(120, seed=3)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    pic = Picture("JPN", float(tracks["time_s"].max()), tracks)
    with Cat062Sink("JPN", sac=7, sic=9, udp=rx.getsockname()) as sink:
        sink.on_picture(pic)
        n = sink.writer.blocks_sent
    got = [rx.recv(65535) for _ in range(n)]
    rx.close()
    with Cat062Sink("JPN", sac=7, sic=9, path=tmp_path / "f.ast") as sink:
        sink.on_picture(pic)
    assert b"".join(got) == (tmp_path / "f.ast").read_bytes()
    assert all(len(d) <= 1400 for d in got)


# ---- CAT048 / CAT021 from a simulated scenario ----------------------------------------------


@pytest.fixture(scope="module")
def scenario_plots():
    sc = load_scenario(DATA / "coalition_small.yaml").model_copy(update={"duration_s": 60.0})
    res = simulate(sc)
    sites = []
    for i, s in enumerate(sc.sensors):
        if s.type == "adsb_receiver":
            sites.append(Site(sac=40, sic=i, sensor_id=s.id, partner=s.partner, kind="adsb", lat_deg=s.lat_deg,
                              lon_deg=s.lon_deg, alt_m=s.alt_m, altitude_sigma_m=ADSB_STEP_M / math.sqrt(12)))  # fmt: skip
        elif getattr(s, "dimension", "") == "2d":
            sites.append(Site(sac=40, sic=i, sensor_id=s.id, partner=s.partner, lat_deg=s.lat_deg, lon_deg=s.lon_deg,
                              alt_m=s.alt_m, range_sigma_m=s.range_sigma_m, azimuth_sigma_deg=s.azimuth_sigma_deg))  # fmt: skip
    sites = Sites(sites=sites)
    keep = np.isin(res.plots["sensor_id"], [s.sensor_id for s in sites.sites])
    plots = res.plots[keep]
    kinds = set(plots["kind"].tolist())
    assert kinds == {int(MeasurementKind.RADAR_2D), int(MeasurementKind.ADSB)}
    date = dt.datetime.fromtimestamp(float(plots["time_s"][0]), dt.UTC).date().isoformat()
    return plots, sites, date


def _encode(plots, sites) -> tuple[bytes, bytes]:
    r2 = plots[plots["kind"] == MeasurementKind.RADAR_2D]
    ad = plots[plots["kind"] == MeasurementKind.ADSB]
    return b"".join(encode_cat048(plots_to_cat048(r2, sites))), b"".join(encode_cat021(plots_to_cat021(ad, sites)))


def _encode_interleaved(plots, sites) -> bytes:
    """CAT048 and CAT021 blocks one second of feed after another, as a recording holds them."""
    out = []
    sec = np.floor(plots["time_s"])
    for s in np.unique(sec):
        out.append(b"".join(_encode(plots[sec == s], sites)))
    return b"".join(out)


def assert_same_plots(got: np.ndarray, want: np.ndarray) -> None:
    for kind in (MeasurementKind.RADAR_2D, MeasurementKind.ADSB):
        g, w = got[got["kind"] == kind], want[want["kind"] == kind]
        assert len(g) == len(w) > 0
        np.testing.assert_array_equal(g["sensor_id"], w["sensor_id"])
        np.testing.assert_array_equal(g["partner"], w["partner"])
        np.testing.assert_allclose(g["time_s"], w["time_s"], atol=1 / 256 + 1e-6, rtol=0)
        np.testing.assert_array_equal(g["mode_s_address"], w["mode_s_address"])
        np.testing.assert_array_equal(g["mode_3a"], w["mode_3a"])
        np.testing.assert_array_equal(g["callsign"], w["callsign"])
        np.testing.assert_allclose(g["alt_m"], w["alt_m"], atol=0.125 * FL_M / 2 + 1e-6, equal_nan=True)
        np.testing.assert_allclose(g["cov"], w["cov"], rtol=1e-9)
        for c in ("sensor_lat_deg", "sensor_lon_deg", "sensor_alt_m"):
            np.testing.assert_allclose(g[c], w[c])
        if kind == MeasurementKind.RADAR_2D:
            np.testing.assert_allclose(g["range_m"], w["range_m"], atol=NM_M / 512 + 1e-6, rtol=0)
            daz = np.angle(np.exp(1j * (g["azimuth_rad"] - w["azimuth_rad"])))
            assert np.all(np.abs(daz) <= math.pi / 65536 + 1e-12)
            # display position (with Mode C) as the simulator computes it, to ~20 m
            np.testing.assert_allclose(g["lat_deg"], w["lat_deg"], atol=2e-4, equal_nan=True)
            np.testing.assert_allclose(g["lon_deg"], w["lon_deg"], atol=2e-4, equal_nan=True)
        else:
            np.testing.assert_allclose(g["lat_deg"], w["lat_deg"], atol=90 / 2**30 + 1e-12, rtol=0)
            np.testing.assert_allclose(g["lon_deg"], w["lon_deg"], atol=90 / 2**30 + 1e-12, rtol=0)


def test_scenario_plots_round_trip_through_a_file(tmp_path, scenario_plots):
    plots, sites, date = scenario_plots
    b48, b21 = _encode(plots, sites)
    path = tmp_path / "feed.ast"
    path.write_bytes(b48 + b21)
    src = AsterixFileSource(path, sites, date=date)
    got = src.read_all()
    assert src.stats.dropped == {} and src.stats.unknown_sac_sic == {}
    assert np.all(np.diff(got["time_s"]) >= 0)
    assert_same_plots(got, plots)
    # a recording read in small chunks: blocks cut by a chunk boundary are carried to the next
    (tmp_path / "rec.ast").write_bytes(_encode_interleaved(plots, sites))
    small = AsterixFileSource(tmp_path / "rec.ast", sites, date=date, chunk_bytes=777)
    assert_same_plots(small.read_all(), plots)
    assert small.stats.dropped == {}
    # the field tables, too, equal libasterix's reading of siap's bytes
    from asterix_reference import assert_equal_tables, reference_decode

    d = decode(b48 + b21)
    ref = reference_decode(b48 + b21)
    assert_equal_tables(d.cat048, ref[48], 48)
    assert_equal_tables(d.cat021, ref[21], 21)


def test_unknown_sac_sic_is_counted_not_guessed(tmp_path, scenario_plots):
    plots, sites, date = scenario_plots
    b48, b21 = _encode(plots, sites)
    path = tmp_path / "feed.ast"
    path.write_bytes(b48 + b21)
    adsb_only = Sites(sites=[s for s in sites.sites if s.kind == "adsb"])
    src = AsterixFileSource(path, adsb_only, date=date)
    got = src.read_all()
    radar = [s for s in sites.sites if s.kind == "radar"][0]
    n_radar = int((plots["kind"] == MeasurementKind.RADAR_2D).sum())
    assert src.stats.unknown_sac_sic == {f"{radar.sac}/{radar.sic}": n_radar}
    assert set(got["kind"].tolist()) == {int(MeasurementKind.ADSB)}


def test_scenario_over_udp_loopback_gives_the_same_plots(scenario_plots):
    plots, sites, date = scenario_plots
    r2 = plots[plots["kind"] == MeasurementKind.RADAR_2D]
    ad = plots[plots["kind"] == MeasurementKind.ADSB]
    datagrams = encode_cat048(plots_to_cat048(r2, sites), 1000) + encode_cat021(plots_to_cat021(ad, sites), 1000)
    src = AsterixUdpSource(sites, 0, date=date, batch_s=0.2, idle_timeout_s=1.5)
    batches: list[np.ndarray] = []
    th = threading.Thread(target=lambda: batches.extend(src))
    th.start()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i, d in enumerate(datagrams):
        tx.sendto(d, ("127.0.0.1", src.port))
        if i % 20 == 19:
            time.sleep(0.005)
    tx.close()
    th.join(timeout=30)
    assert not th.is_alive()
    got = np.concatenate(batches)
    assert all(np.all(np.diff(b["time_s"]) >= 0) for b in batches)
    assert_same_plots(got, plots)


def test_midnight_roll_over_in_a_raw_file(tmp_path, scenario_plots):
    plots, sites, _ = scenario_plots
    shifted = plots.copy()
    midnight = 1_798_761_600.0  # 2027-01-01 00:00 UTC
    shifted["time_s"] += midnight - 30.0 - plots["time_s"][0]  # starts 30 s before midnight
    b48, b21 = _encode(shifted, sites)
    (tmp_path / "f.ast").write_bytes(b48 + b21)
    got = AsterixFileSource(tmp_path / "f.ast", sites, date="2026-12-31").read_all()
    assert got["time_s"].min() < midnight < got["time_s"].max()
    assert_same_plots(got, shifted)


def test_radar_position_from_cat034_when_the_site_has_none(tmp_path, scenario_plots):
    plots, sites, date = scenario_plots
    radar = [s for s in sites.sites if s.kind == "radar"][0]
    r2 = plots[plots["sensor_id"] == radar.sensor_id]
    b48 = b"".join(encode_cat048(plots_to_cat048(r2, sites)))
    # a north marker with I034/120 (the radar's own position), built by libasterix
    rec034 = gen.Cat_034_1_29.cv_record.create({
        "010": (("SAC", radar.sac), ("SIC", radar.sic)), "000": 1, "030": (30000.0, "s"),
        "120": (("HGT", (float(round(radar.alt_m)), "m")), ("LAT", (radar.lat_deg, "°")), ("LON", (radar.lon_deg, "°"))),
    })  # fmt: skip
    b034 = gen.Cat_034_1_29.create([rec034]).unparse().to_bytes()
    unplaced = Sites(sites=[s.model_copy(update={"lat_deg": None, "lon_deg": None, "alt_m": None}) if s is radar else s
                            for s in sites.sites])  # fmt: skip
    (tmp_path / "with034.ast").write_bytes(b034 + b48)
    got = AsterixFileSource(tmp_path / "with034.ast", unplaced, date=date).read_all()
    assert len(got) == len(r2)
    np.testing.assert_allclose(got["sensor_lat_deg"], radar.lat_deg, atol=180 / 2**23)
    np.testing.assert_allclose(got["sensor_lon_deg"], radar.lon_deg, atol=180 / 2**23)
    np.testing.assert_allclose(got["sensor_alt_m"], radar.alt_m, atol=0.5)
    (tmp_path / "no034.ast").write_bytes(b48)
    src = AsterixFileSource(tmp_path / "no034.ast", unplaced, date=date)
    assert len(src.read_all()) == 0
    assert src.stats.dropped == {"no_site_position": len(r2)}


def test_multicast_loopback():
    sites = Sites(sites=[Site(sac=25, sic=201, sensor_id="R", partner="FRA", lat_deg=48.0, lon_deg=2.0)])
    group = "239.255.12.34"
    try:
        src = AsterixUdpSource(sites, 0, group=group, date="2016-05-05", idle_timeout_s=1.0, batch_s=0.2)
    except OSError as exc:  # no multicast on this host's loopback
        pytest.skip(f"cannot join {group} on loopback: {exc}")
    out: list[np.ndarray] = []
    th = threading.Thread(target=lambda: out.extend(src))
    th.start()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    block = (DATA / "cat048.raw").read_bytes()
    for _ in range(3):
        tx.sendto(block, (group, src.port))
    tx.close()
    th.join(timeout=20)
    got = np.concatenate(out)
    assert len(got) == 3 and set(got["callsign"]) == {"DLH65A"}
    assert src.stats.records["cat048"] == 3


def test_live_udp_takes_the_day_from_the_receive_time(scenario_plots):
    """Without a date, each record's time of day is placed nearest the time it arrived."""
    plots, sites, _ = scenario_plots
    ad = plots[plots["kind"] == MeasurementKind.ADSB][:20].copy()
    ad["time_s"] = time.time() - 3.0 + np.linspace(0, 1, len(ad))
    src = AsterixUdpSource(sites, 0, batch_s=0.2, idle_timeout_s=1.0)
    got: list[np.ndarray] = []
    th = threading.Thread(target=lambda: got.extend(src))
    th.start()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for d in encode_cat021(plots_to_cat021(ad, sites)):
        tx.sendto(d, ("127.0.0.1", src.port))
    tx.close()
    th.join(timeout=20)
    g = np.concatenate(got)
    assert len(g) == len(ad)
    np.testing.assert_allclose(g["time_s"], ad["time_s"], atol=1 / 256 + 1e-6, rtol=0)


def test_file_source_is_restartable(tmp_path, scenario_plots):
    """The runtime may iterate a file source again (to seek backward): same batches, same counts."""
    plots, sites, date = scenario_plots
    (tmp_path / "rec.ast").write_bytes(_encode_interleaved(plots, sites))
    src = AsterixFileSource(tmp_path / "rec.ast", sites, date=date, batch_s=2.0)
    first = list(src)
    stats1 = src.stats.as_dict()
    second = list(src)
    assert len(first) == len(second) > 1
    for a, b in zip(first, second, strict=True):
        assert a.tobytes() == b.tobytes()  # identical records (NaN fields included)
    assert src.stats.as_dict() == stats1 and stats1["plots"] == len(plots)
    assert all(b["time_s"].min() >= a["time_s"].max() for a, b in zip(first[:-1], first[1:], strict=True))
