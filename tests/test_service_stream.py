"""The stream under load on a real server (uvicorn on loopback): a client that stops reading
delays neither the other clients nor the pipeline, and is dropped after ``send_timeout_s``.
Also the replayer's clock (speed, pause, seek, loop), recordings, and the identification
rules."""

from __future__ import annotations

import base64
import json
import os
import socket
import time

import numpy as np
import pytest
from service_support import ServerThread, coalition_run, wait_for
from websockets.sync.client import connect

from siap import records
from siap.picture import Picture
from siap.service import (
    Identifier,
    IdentityRule,
    PictureReplayer,
    ServiceConfig,
    create_app,
    load_recording,
    save_recording,
)
from siap.service.synthetic import synthetic_pictures
from siap.service.tracks import display_number, encode_tracks
from siap.sharing.policy import load_policy


def stalled_client(port: int, path: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)  # read the handshake answer byte by byte: nothing of the frames after it
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def test_a_client_that_stops_reading_delays_nobody(tmp_path):
    policy = load_policy("pacific")
    n_pictures = 20
    pictures = synthetic_pictures(2000, n_pictures, ["USA"], policy)["USA"]
    times = np.unique(pictures["time_s"])
    source = PictureReplayer({"USA": pictures}, policy)
    cfg = ServiceConfig.generate(policy.partners, audit_log=tmp_path / "audit.jsonl", send_timeout_s=3.0)
    app = create_app(source, cfg, start_source=False)
    hub = app.state.hub
    path = f"/api/v1/partners/USA/stream?token={cfg.tokens['USA']}"
    with ServerThread(app) as srv:
        hub.on_picture(Picture("USA", float(times[0]), pictures[pictures["time_s"] == times[0]]))
        wait_for(lambda: hub.view("USA") is not None)
        stalled = stalled_client(srv.port, path)
        with connect(f"ws://127.0.0.1:{srv.port}{path}", max_size=None) as ws:
            assert json.loads(ws.recv())["type"] == "hello"
            state = {t["id"]: t for t in json.loads(ws.recv())["tracks"]}
            wait_for(lambda: hub.n_subscribers == 2, what="both clients subscribed")
            seq = hub.view("USA").seq
            returned = []
            for t in times[1:]:
                t0 = time.perf_counter()
                hub.on_picture(Picture("USA", float(t), pictures[pictures["time_s"] == t]))
                returned.append(time.perf_counter() - t0)
                # the reading client gets every update although the other one is stuck
                while True:
                    frame = json.loads(ws.recv(timeout=30))
                    for tr in frame["added"] + frame["changed"]:
                        state[tr["id"]] = tr
                    for tid in frame["removed"]:
                        state.pop(tid, None)
                    if frame["seq"] == seq + 1:
                        break
                seq += 1
                assert frame["time_s"] == float(t)
            assert hub.counts["views"] == n_pictures  # the pipeline made every view
            assert state == hub.view("USA").tracks
            assert len(state) > 1000
            print(f"on_picture returned in at most {max(returned) * 1e6:.0f} us with a stalled client")
            # the stalled client has fallen behind by megabytes and is dropped after send_timeout_s
            wait_for(lambda: hub.n_subscribers == 1, timeout_s=30, what="the stalled client to be dropped")
            ws.send(json.dumps({"type": "ping"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "pong"
        stalled.close()
        # a new connection (a reconnect) starts from the latest state
        with connect(f"ws://127.0.0.1:{srv.port}{path}", max_size=None) as ws:
            ws.recv()
            full = json.loads(ws.recv())
            assert full["type"] == "full" and full["seq"] == seq and len(full["tracks"]) == len(state)


def test_replayer_clock_pause_speed_seek_and_loop():
    coal, policy, sim = coalition_run()

    class Sink:
        def __init__(self):
            self.got = []

        def on_picture(self, picture):
            self.got.append((picture.partner, picture.time_s, len(picture)))

    sink = Sink()
    rep = PictureReplayer.from_coalition(coal, policy, speed=100.0, loop=False, tick_s=0.01)
    rep.add_sink(sink)
    assert rep.start_s == float(coal.times[0]) and rep.end_s == float(coal.times[-1])
    rep.start()
    try:
        wait_for(lambda: rep.paused, what="the replay to reach its end")
        assert rep.now_s == rep.end_s
        by_partner = {p: [t for q, t, _ in sink.got if q == p] for p in policy.partners}
        for p, ts in by_partner.items():
            assert ts == sorted(ts) and ts[0] == rep.start_s and ts[-1] == rep.end_s, p
        expected = {(p, float(t), int(np.count_nonzero(coal.coalition[p]["time_s"] == t))) for p in policy.partners for t in coal.times}
        assert set(sink.got) <= expected
        n = len(sink.got)
        mid = float(coal.times[2])
        rep.seek(mid)
        assert {(p, t) for p, t, _ in sink.got[n:]} == {(p, mid) for p in policy.partners}
        assert rep.paused  # seek does not resume
        with pytest.raises(ValueError, match="time_s"):
            rep.seek(rep.end_s + 100)
        with pytest.raises(ValueError, match="speed"):
            rep.set_speed(-1)
        rep.set_speed(1000.0)
        rep.resume()
        wait_for(lambda: rep.paused and rep.now_s == rep.end_s, what="the end again")
    finally:
        rep.stop()


def test_replayer_loops_to_the_start():
    coal, policy, _ = coalition_run()
    seen = []
    rep = PictureReplayer.from_coalition(coal, policy, speed=200.0, loop=True, tick_s=0.01)
    rep.add_sink(type("S", (), {"on_picture": lambda self, p: seen.append(p.time_s)})())
    rep.start()
    try:
        wait_for(lambda: seen.count(rep.start_s) >= 2 * len(policy.partners), what="a second lap")
    finally:
        rep.stop()


def test_recording_round_trip(tmp_path):
    coal, policy, sim = coalition_run()
    folder = save_recording(
        tmp_path / "rec", coal.coalition, "pacific", sensors=sim.sensors, truth=sim.truth, times=coal.times
    )
    rep = load_recording(folder)
    assert rep.partners == list(policy.partners)
    assert (rep.start_s, rep.end_s) == (float(coal.times[0]), float(coal.times[-1]))
    assert [s.id for s in rep.sensors] == [s.id for s in sim.sensors]
    air = next(s for s in rep.sensors if s.id == "USA-AEW-1")
    assert air.platform_track is not None and len(air.platform_track) > 1
    assert np.array_equal(rep.truth, sim.truth)
    for p in policy.partners:
        times, frames = rep._frames[p]
        assert np.array_equal(records.concatenate(frames), coal.coalition[p][np.argsort(coal.coalition[p]["time_s"], kind="stable")])


def test_recording_errors_are_one_line(tmp_path):
    from siap.errors import InputError

    with pytest.raises(InputError, match="manifest.json: expected a siap recording folder"):
        load_recording(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(InputError, match="format: expected 'siap-recording-1'"):
        load_recording(tmp_path)


def test_identification_rules():
    t = records.empty_tracks(5)
    t["mode_s_address"] = [0xAE1234, 0x840001, -1, -1, -1]
    t["mode_3a"] = [-1, 0o1234, -1, 0o7500, -1]
    t["callsign"] = ["PELICAN1", "JAL12", "", "", ""]
    t["sensors"] = ["USA-AEW-1", "JPN-GR-OKI", "JPN-GR-GOTO", "X", "JPN-GR-GOTO,USA-AEW-1"]
    default = Identifier()
    aff, rule = default.classify(t)
    assert aff.tolist() == ["friend", "neutral", "unknown", "neutral", "unknown"]
    custom = Identifier(
        [
            IdentityRule(name="hijack", affiliation="hostile", mode_3a=("7500",)),
            IdentityRule(name="AEW seen", affiliation="friend", sensor=("USA-AEW-1",), cooperative=False),
            *default.rules,
        ]
    )
    aff, rule = custom.classify(t)
    assert aff.tolist() == ["friend", "neutral", "unknown", "hostile", "friend"]
    assert rule.tolist() == [2, 3, 4, 0, 1]


def test_encoded_tracks_are_json_and_consistent():
    coal, policy, _ = coalition_run()
    rows = coal.coalition["JPN"][coal.coalition["JPN"]["time_s"] == coal.times[-1]]
    enc = encode_tracks(rows, Identifier())
    text = json.dumps(enc, allow_nan=False)  # no NaN reaches a browser
    assert len(json.loads(text)) == len(rows)
    for e, r in zip(enc, rows, strict=True):
        assert int(e["id"]) == int(r["track_id"])
        assert abs(e["speed_mps"] - np.hypot(e["ve_mps"], e["vn_mps"])) < 0.1
        # the ENU speed equals the ECEF speed (a rotation), up to the vertical part
        assert abs(np.linalg.norm(r["vel_ecef_mps"]) - np.hypot(e["speed_mps"], e["vu_mps"])) < 0.1
    assert display_number(0) == "0"
    from siap.fusion.ctn import ctn_with_generation, local_key

    key = int(local_key("JPN", 1042)[0])
    assert display_number(key) == "JPN-1042"
    assert display_number(ctn_with_generation(key, 1)) == "JPN-1042.1"
    assert display_number(int(local_key("US", 7)[0])) == "US-7"
    assert display_number(int(local_key("JPN", (1 << 32) | 62)[0])) == "JPN-1:62"  # source group 1
