"""Cursor-on-Target out (siap.formats.cot): events parse back to the picture's tracks, the
affiliation rule, and UDP / TCP loopback delivery."""

from __future__ import annotations

import socket
import threading
from datetime import datetime

import numpy as np
import pytest

from siap import geo, records
from siap.formats import cot
from siap.picture import Picture

T0 = 1_800_000_000.0


def _tracks() -> np.ndarray:
    lat = np.array([35.0, 36.0, 34.5, 35.5])
    lon = np.array([139.0, 140.0, 138.0, 139.5])
    alt = np.array([10_000.0, 5_000.0, 300.0, 8_000.0])
    vel_enu = np.array([[100.0, 0.0, 0.0], [0.0, -200.0, 5.0], [-50.0, 50.0, 0.0], [3.0, 4.0, 0.0]])
    sig_enu = np.array([[30.0, 40.0, 20.0], [100.0, 100.0, 50.0], [5.0, 5.0, 5.0], [10.0, 20.0, 30.0]])
    t = records.empty_tracks(4)
    t["time_s"] = T0 - 1.0
    t["track_id"] = [101, 102, 103, 104]
    t["status"] = records.TrackStatus.CONFIRMED
    t["lat_deg"], t["lon_deg"], t["alt_m"] = lat, lon, alt
    t["pos_ecef_m"] = geo.geodetic_to_ecef(lat, lon, alt)
    rot = geo.enu_rotation(lat, lon)
    t["vel_ecef_mps"] = np.einsum("nji,nj->ni", rot, vel_enu)
    cov = np.zeros((4, 6, 6))
    for i in range(4):
        p_enu = np.diag(sig_enu[i] ** 2)
        cov[i, :3, :3] = rot[i].T @ p_enu @ rot[i]
        cov[i, 3:, 3:] = np.eye(3)
    t["cov_ecef"] = cov
    t["mode_s_address"] = [0x393322, 0xAE1234, -1, 0x840001]
    t["mode_3a"] = [0o1000, -1, -1, 0o7500]
    t["callsign"] = ["AFR34ZG", "RCH123", "", "JAL1"]
    t["partner"] = ""
    t["sensors"] = ["jpn-r1", "usa-a1", "jpn-r1", "aus-r1"]
    return t


def _picture() -> Picture:
    return Picture("JPN", T0, _tracks(), "coalition")


def _rule() -> cot.CotConfig:
    return cot.CotConfig(
        affiliation=cot.AffiliationConfig(
            rules=[
                cot.AffiliationRule(affiliation="h", mode_3a=[0o7500]),
                cot.AffiliationRule(affiliation="f", mode_s_ranges=[(0xADF7C8, 0xAFFFFF)]),
            ]
        )
    )


def _check_events(events: list[dict], picture: Picture) -> None:
    tr = picture.tracks
    assert [e["uid"] for e in events] == [f"siap.JPN.{i}" for i in tr["track_id"]]
    assert [e["type"] for e in events] == ["a-n-A", "a-f-A", "a-u-A", "a-h-A"]
    for e, t in zip(events, tr, strict=True):
        assert e["lat"] == pytest.approx(t["lat_deg"], abs=1e-7)
        assert e["lon"] == pytest.approx(t["lon_deg"], abs=1e-7)
        assert e["hae"] == pytest.approx(t["alt_m"], abs=0.05)
        assert e["siap"]["ctn"] == str(t["track_id"])
        assert datetime.fromisoformat(e["stale"]).timestamp() == pytest.approx(T0 + 15.0)
        assert datetime.fromisoformat(e["start"]).timestamp() == pytest.approx(T0)
        assert datetime.fromisoformat(e["time"]).timestamp() == pytest.approx(T0 - 1.0)
        assert e["how"] == "m-f"
    assert [e["course"] for e in events] == pytest.approx([90.0, 180.0, 315.0, np.degrees(np.arctan2(3, 4))], abs=0.01)
    assert [e["speed"] for e in events] == pytest.approx([100.0, 200.0, np.hypot(50, 50), 5.0], abs=0.01)
    # ce: circular 1-sigma sqrt((s_e^2 + s_n^2) / 2); le: vertical sigma
    assert [e["ce"] for e in events] == pytest.approx([np.sqrt((900 + 1600) / 2), 100.0, 5.0, np.sqrt(250)], abs=0.06)
    assert [e["le"] for e in events] == pytest.approx([20.0, 50.0, 5.0, 30.0], abs=0.06)
    assert [e["callsign"] for e in events] == ["AFR34ZG", "RCH123", "JPN103", "JAL1"]
    assert events[0]["siap"]["mode_s"] == "393322" and events[0]["siap"]["mode_3a"] == "1000"
    assert "mode_s" not in events[2]["siap"]


def test_events_parse_back_to_the_tracks():
    pic = _picture()
    data = cot.picture_to_cot(pic, _rule())
    assert len(data) == 4
    _check_events([cot.parse_cot(d)[0] for d in data], pic)


def test_affiliation_rule_order_and_defaults():
    tr = _tracks()
    cfg = cot.AffiliationConfig()
    assert cot.affiliations(tr, cfg).tolist() == ["n", "n", "u", "n"]
    cfg = cot.AffiliationConfig(
        rules=[cot.AffiliationRule(affiliation="f", callsign_prefixes=["JAL", "AFR"]),
               cot.AffiliationRule(affiliation="h", callsign_prefixes=["AFR"])],
        cooperative="u", default="h",
    )
    assert cot.affiliations(tr, cfg).tolist() == ["f", "u", "h", "f"]
    both = cot.AffiliationRule(affiliation="f", callsign_prefixes=["JAL"], mode_3a=[0o1000])
    assert not both.matches(tr).any()  # every criterion of a rule must hold
    with pytest.raises(ValueError):
        cot.AffiliationRule(affiliation="x")


def test_tentative_tracks_are_left_out_unless_asked():
    tr = _tracks()
    tr["status"][1] = records.TrackStatus.TENTATIVE
    pic = Picture("JPN", T0, tr)
    assert len(cot.picture_to_cot(pic)) == 3
    assert len(cot.picture_to_cot(pic, cot.CotConfig(confirmed_only=False))) == 4


def test_cot_over_udp_loopback():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5.0)
    with cot.CotUdpSink("127.0.0.1", rx.getsockname()[1], _rule()) as sink:
        sink.on_picture(_picture())
        assert sink.flush()
        events = [cot.parse_cot(rx.recv(65536))[0] for _ in range(4)]
    rx.close()
    assert sink.counts["events"] == 4 and sink.counts["pictures"] == 1
    _check_events(events, _picture())


def test_cot_over_tcp_loopback_streams_events_back_to_back():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    got = bytearray()

    def serve():
        conn, _ = server.accept()
        conn.settimeout(5.0)
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                got.extend(data)

    th = threading.Thread(target=serve)
    th.start()
    with cot.CotTcpSink("127.0.0.1", server.getsockname()[1], _rule()) as sink:
        sink.on_picture(_picture())
        assert sink.flush()
        later = Picture("JPN", T0 + 5.0, _tracks())
        sink.on_picture(later)
        assert sink.flush()
    th.join(5.0)
    server.close()
    events = cot.parse_cot(bytes(got))
    assert len(events) == 8 and sink.counts["connects"] == 1
    _check_events(events[:4], _picture())
    assert datetime.fromisoformat(events[4]["start"]).timestamp() == pytest.approx(T0 + 5.0)


def test_a_tracker_picture_of_decoded_adsb_goes_out_as_cot():
    from pathlib import Path

    from siap.formats import modes
    from siap.tracking import Tracker, TrackerConfig

    rx = modes.ReceiverConfig(lat_deg=49.0097, lon_deg=2.5479, partner="FRA")
    path = Path(__file__).parent / "data" / "modes" / "full_flight_short_trim.jsonl.gz"
    plots, _, _ = modes.decode_file(path, rx)
    plots = plots[plots["alt_m"] > 1000][:1500]
    trk = Tracker(TrackerConfig(origin_lat_deg=rx.lat_deg, origin_lon_deg=rx.lon_deg))
    trk.process(plots)
    t = float(plots["time_s"][-1])
    pic = Picture("FRA", t, trk.snapshot(t), "own")
    (ev,) = [cot.parse_cot(e)[0] for e in cot.picture_to_cot(pic)]
    assert ev["type"] == "a-n-A" and ev["callsign"] == "AFR34ZG" and ev["siap"]["mode_s"] == "393322"
    last = plots[-1]
    assert ev["lat"] == pytest.approx(last["lat_deg"], abs=0.01) and ev["lon"] == pytest.approx(last["lon_deg"], abs=0.01)
    assert 50.0 < ev["speed"] < 300.0
