"""The live service's API over a replayed real coalition run (pacific, 30 s): every endpoint,
access control (401 / 403 and the audit entry of a refusal), the WebSocket protocol, and the
defence-in-depth release filter."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_support import coalition_run, restricted_rows, wait_for
from starlette.websockets import WebSocketDisconnect

from siap.errors import ConfigError
from siap.picture import Picture
from siap.service import PictureReplayer, ServiceConfig, create_app, load_service_config
from siap.sharing.audit import read_head, verify_audit_log

RESTRICTED = "SIAP//CONFIDENTIAL//REL TO JPN, USA"  # JPN's East China Sea radars: not for AUS


@pytest.fixture(scope="module")
def run():
    return coalition_run()


@pytest.fixture()
def service(run, tmp_path):
    """(client, config, replayer, hub): the app over a replayer that is moved by hand (seek)."""
    coal, policy, sim = run
    replayer = PictureReplayer.from_coalition(coal, policy, sensors=sim.sensors, truth=sim.truth)
    cfg = ServiceConfig.generate(policy.partners, audit_log=tmp_path / "audit.jsonl")
    app = create_app(replayer, cfg, start_source=False)
    with TestClient(app) as client:
        replayer.seek(replayer.end_s)
        hub = app.state.hub
        wait_for(hub.ready, what="a view per partner")
        yield client, cfg, replayer, hub


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def audit_entries(cfg) -> list[dict]:
    return [json.loads(line) for line in cfg.audit_log.read_text().splitlines()]


def test_health_ready_openapi(service):
    client, *_ = service
    assert client.get("/health").json() == {"status": "ok"}
    r = client.get("/ready")
    assert r.status_code == 200 and r.json()["ready"] is True
    paths = client.get("/openapi.json").json()["paths"]
    for p in (
        "/health", "/ready", "/api/v1/whoami", "/api/v1/partners", "/api/v1/partners/{partner}/tracks",
        "/api/v1/partners/{partner}/tracks/{track_id}", "/api/v1/partners/{partner}/tracks/{track_id}/history",
        "/api/v1/partners/{partner}/trails", "/api/v1/partners/{partner}/sensors",
        "/api/v1/partners/{partner}/metrics", "/api/v1/clock", "/api/v1/clock/seek",
    ):
        assert p in paths, p


def test_not_ready_before_the_first_picture(run, tmp_path):
    coal, policy, sim = run
    replayer = PictureReplayer.from_coalition(coal, policy)
    cfg = ServiceConfig.generate(policy.partners, audit_log=tmp_path / "a.jsonl")
    with TestClient(create_app(replayer, cfg, start_source=False)) as client:
        r = client.get("/ready")
        assert r.status_code == 503 and r.json()["ready"] is False
        assert client.get("/api/v1/partners/AUS/tracks", headers=bearer(cfg.tokens["AUS"])).status_code == 404


def test_missing_or_wrong_token_is_401_and_audited(service):
    client, cfg, *_ = service
    assert client.get("/api/v1/partners/AUS/tracks").status_code == 401
    r = client.get("/api/v1/partners/AUS/tracks", headers=bearer("x" * 32))
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/v1/whoami", headers={"Authorization": cfg.tokens["AUS"]}).status_code == 401  # no scheme
    kinds = [e["kind"] for e in audit_entries(cfg)]
    assert kinds.count("unauthenticated") == 3


def test_partner_sees_only_its_releasable_picture(service, run):
    client, cfg, replayer, hub = service
    _, policy, _ = run
    for partner in policy.partners:
        r = client.get(f"/api/v1/partners/{partner}/tracks", headers=bearer(cfg.tokens[partner]))
        assert r.status_code == 200
        body = r.json()
        assert body["time_s"] == replayer.end_s
        ids = {t["id"] for t in body["tracks"]}
        assert ids == set(hub.view(partner).tracks)
        assert len(ids) > 20
        assert all(policy.releasable(t["label"], partner) for t in body["tracks"])
        assert all(t["status"] in ("confirmed", "coasting") for t in body["tracks"])
        # the ids are the coalition picture's own (confirmed rows at that time)
        pic = replayer._frames[partner][1][-1]
        shown = Picture(partner, replayer.end_s, pic).releasable_to(partner, policy).confirmed()
        assert ids == {str(i) for i in shown.track_ids}


def test_another_partners_picture_is_403_and_audited(service):
    client, cfg, *_ = service
    for path in ("tracks", "trails", "sensors", "metrics"):
        r = client.get(f"/api/v1/partners/JPN/{path}", headers=bearer(cfg.tokens["AUS"]))
        assert r.status_code == 403, path
        assert "AUS" in r.json()["detail"]
    refusals = [e for e in audit_entries(cfg) if e["kind"] == "refuse"]
    assert len(refusals) == 4
    d = refusals[0]["details"]
    assert d["caller"] == "AUS" and d["target_partner"] == "JPN" and d["status"] == 403
    assert d["action"] == "GET /api/v1/partners/JPN/tracks"
    svc = client.app.state.service
    head = read_head(str(cfg.audit_log) + ".head")
    assert verify_audit_log(cfg.audit_log, svc.trust, node="siap-service", run_id=svc.run_id, heads=[head]).ok


def test_admin_views_every_partner(service, run):
    client, cfg, *_ = service
    admin = bearer(cfg.admin_tokens[0])
    who = client.get("/api/v1/whoami", headers=admin).json()
    assert who["role"] == "admin" and who["viewable"] == list(run[1].partners)
    for partner in run[1].partners:
        assert client.get(f"/api/v1/partners/{partner}/tracks", headers=admin).status_code == 200
    assert client.get("/api/v1/partners/XYZ/tracks", headers=admin).status_code == 404
    parts = client.get("/api/v1/partners", headers=bearer(cfg.tokens["USA"])).json()["partners"]
    assert {p["partner"]: p["viewable"] for p in parts} == {"AUS": False, "JPN": False, "USA": True}
    assert "tracks" in next(p for p in parts if p["partner"] == "USA")
    assert "tracks" not in next(p for p in parts if p["partner"] == "JPN")


def test_track_detail_history_and_trails(service):
    client, cfg, replayer, hub = service
    h = bearer(cfg.tokens["JPN"])
    replayer.seek(replayer.start_s)  # back in time: history restarts
    wait_for(lambda: hub.view("JPN").time_s == replayer.start_s, what="seek")
    for t in np.unique(replayer._frames["JPN"][0])[1:]:
        replayer.seek(float(t))
        wait_for(lambda t=t: hub.view("JPN").time_s == t, what="picture")
    tracks = client.get("/api/v1/partners/JPN/tracks", headers=h).json()["tracks"]
    t = max(tracks, key=lambda x: x["n_updates"])
    one = client.get(f"/api/v1/partners/JPN/tracks/{t['id']}", headers=h).json()
    assert one == t
    for key in ("lat", "lon", "fl", "speed_mps", "course_deg", "pos_sigma_m", "sources", "sensors", "label", "affiliation"):
        assert key in one
    hist = client.get(f"/api/v1/partners/JPN/tracks/{t['id']}/history", headers=h).json()["points"]
    assert len(hist) >= 2 and hist[-1]["t"] == t["t"] and hist[-1]["lat"] == t["lat"]
    assert all(a["t"] < b["t"] for a, b in zip(hist, hist[1:], strict=False))
    trails = client.get("/api/v1/partners/JPN/trails?points=3", headers=h).json()["trails"]
    assert set(trails) == {x["id"] for x in tracks}
    assert all(1 <= len(v) <= 3 for v in trails.values())
    assert client.get("/api/v1/partners/JPN/tracks/123", headers=h).status_code == 404
    assert client.get("/api/v1/partners/JPN/tracks/123/history", headers=h).status_code == 404
    assert client.get("/api/v1/partners/JPN/trails?points=0", headers=h).status_code == 422


def test_sensors_follow_releasability(service, run):
    client, cfg, *_ = service
    policy = run[1]
    aus = {s["id"]: s for s in client.get("/api/v1/partners/AUS/sensors", headers=bearer(cfg.tokens["AUS"])).json()["sensors"]}
    jpn = {s["id"]: s for s in client.get("/api/v1/partners/JPN/sensors", headers=bearer(cfg.tokens["JPN"])).json()["sensors"]}
    assert "JPN-GR-GOTO" in jpn and "JPN-GR-GOTO" not in aus  # REL TO JPN, USA
    assert "JPN-GR-NOTO" in aus and "AUS-AEW-1" in aus
    assert set(jpn) == set(policy.sensors)
    goto = jpn["JPN-GR-GOTO"]
    assert 0 < goto["coverage_radius_m"] <= goto["max_range_m"]
    assert aus["AUS-AEW-1"]["airborne"] is True


def test_metrics_against_truth(service, run):
    client, cfg, *_ = service
    m = client.get("/api/v1/partners/USA/metrics", headers=bearer(cfg.tokens["USA"])).json()
    assert 0 < m["truth_objects_in_coverage"] <= m["truth_objects_alive"]
    assert m["tracks"] > 0
    assert 0.3 < m["metrics"]["siap_completeness"] <= 1.0
    assert 0 <= m["metrics"]["siap_position_accuracy_m"] < 1000
    assert np.isfinite(m["metrics"]["gospa_mean_m"])


def test_metrics_without_truth_is_404(run, tmp_path):
    coal, policy, _ = run
    replayer = PictureReplayer.from_coalition(coal, policy)
    cfg = ServiceConfig.generate(policy.partners, audit_log=tmp_path / "a.jsonl")
    app = create_app(replayer, cfg, start_source=False)
    with TestClient(app) as client:
        replayer.seek(replayer.end_s)
        wait_for(app.state.hub.ready)
        assert client.get("/api/v1/partners/AUS/metrics", headers=bearer(cfg.tokens["AUS"])).status_code == 404


def test_clock_control_is_admin_only(service):
    client, cfg, replayer, _ = service
    partner, admin = bearer(cfg.tokens["JPN"]), bearer(cfg.admin_tokens[0])
    assert client.get("/api/v1/clock", headers=partner).json()["end_s"] == replayer.end_s
    assert client.post("/api/v1/clock/pause", headers=partner).status_code == 403
    assert audit_entries(cfg)[-1]["details"]["reason"] == "exercise control needs the admin role"
    assert client.post("/api/v1/clock/pause", headers=admin).json()["paused"] is True
    assert client.post("/api/v1/clock/resume", headers=admin).json()["paused"] is False
    assert client.post("/api/v1/clock/speed", headers=admin, json={"speed": 4}).json()["speed"] == 4
    assert client.post("/api/v1/clock/speed", headers=admin, json={"speed": 0}).status_code == 422
    assert client.post("/api/v1/clock/seek", headers=admin, json={"time_s": 1.0}).status_code == 422
    t = replayer.start_s + 5
    assert client.post("/api/v1/clock/seek", headers=admin, json={"time_s": t}).json()["now_s"] == t
    controls = [e["details"] for e in audit_entries(cfg) if e["kind"] == "control"]
    assert [c["action"] for c in controls] == ["pause", "resume", "speed", "seek"]


def test_defence_in_depth_drops_rows_not_releasable(service, run):
    """A picture reaching the hub with rows the partner may not see (an upstream release
    filter failed): REST and WebSocket never carry them."""
    client, cfg, replayer, hub = service
    coal, policy, _ = run
    rows = replayer._frames["AUS"][1][-1]
    leaky = restricted_rows(rows, RESTRICTED, every=4)
    secret = {str(i) for i in np.unique(leaky["track_id"][leaky["label"] == RESTRICTED])}
    assert secret
    with client.websocket_connect(f"/api/v1/partners/AUS/stream?token={cfg.tokens['AUS']}") as ws:
        assert json.loads(ws.receive_text())["type"] == "hello"
        before = json.loads(ws.receive_text())
        hub.on_picture(Picture("AUS", replayer.end_s + 5, leaky))
        frame = json.loads(ws.receive_text())
        assert frame["type"] == "delta" and frame["base_seq"] == before["seq"]
        sent = {t["id"] for t in frame["added"] + frame["changed"]}
        assert not sent & secret
        assert set(frame["removed"]) >= secret & {t["id"] for t in before["tracks"]}
    body = client.get("/api/v1/partners/AUS/tracks", headers=bearer(cfg.tokens["AUS"])).json()
    assert not {t["id"] for t in body["tracks"]} & secret
    assert hub.counts["withheld_rows"] >= len(secret)


def test_websocket_full_then_deltas_reproduce_the_picture(service):
    client, cfg, replayer, hub = service
    replayer.seek(replayer.start_s)
    wait_for(lambda: hub.view("USA").time_s == replayer.start_s)
    with client.websocket_connect(f"/api/v1/partners/USA/stream?token={cfg.tokens['USA']}") as ws:
        hello = json.loads(ws.receive_text())
        assert hello == {"type": "hello", "role": "partner", "viewer": "USA", "partner": "USA", "policy": "pacific"}
        full = json.loads(ws.receive_text())
        assert full["type"] == "full"
        state = {t["id"]: t for t in full["tracks"]}
        seq = full["seq"]
        for t in np.unique(replayer._frames["USA"][0])[1:]:
            replayer.seek(float(t))
            frame = json.loads(ws.receive_text())
            assert frame["type"] == "delta" and frame["base_seq"] == seq
            for tr in frame["added"] + frame["changed"]:
                state[tr["id"]] = tr
            for tid in frame["removed"]:
                del state[tid]
            seq = frame["seq"]
        rest = client.get("/api/v1/partners/USA/tracks", headers=bearer(cfg.tokens["USA"])).json()
        assert seq == rest["seq"]
        assert state == {t["id"]: t for t in rest["tracks"]}
        # a malformed message gets an error frame; the connection stays up
        ws.send_text("{not json")
        err = json.loads(ws.receive_text())
        assert err["type"] == "error" and "expected" in err["detail"]
        ws.send_text(json.dumps({"type": "subscribe", "partner": "JPN"}))
        assert json.loads(ws.receive_text())["type"] == "error"
        ws.send_text(json.dumps({"type": "ping"}))
        assert json.loads(ws.receive_text())["type"] == "pong"
        ws.send_text(json.dumps({"type": "full"}))
        again = json.loads(ws.receive_text())
        assert again["type"] == "full" and {t["id"] for t in again["tracks"]} == set(state)


def test_websocket_refusals(service):
    client, cfg, *_ = service
    cases = [
        ("/api/v1/partners/AUS/stream", 4401),
        ("/api/v1/partners/AUS/stream?token=" + "y" * 30, 4401),
        (f"/api/v1/partners/JPN/stream?token={cfg.tokens['AUS']}", 4403),
        (f"/api/v1/partners/XYZ/stream?token={cfg.tokens['AUS']}", 4404),
    ]
    for url, code in cases:
        with client.websocket_connect(url) as ws, pytest.raises(WebSocketDisconnect) as exc:
            ws.receive_text()
        assert exc.value.code == code, url
    refusal = [e for e in audit_entries(cfg) if e["kind"] == "refuse"][-1]["details"]
    assert refusal["action"] == "WS /api/v1/partners/JPN/stream" and refusal["caller"] == "AUS"
    with client.websocket_connect(f"/api/v1/partners/JPN/stream?token={cfg.admin_tokens[0]}") as ws:
        assert json.loads(ws.receive_text())["role"] == "admin"
        assert json.loads(ws.receive_text())["type"] == "full"


def test_service_config_file(tmp_path):
    good = ServiceConfig.generate(["JPN", "USA"], audit_log=tmp_path / "a.jsonl")
    path = good.to_yaml(tmp_path / "service.yaml")
    assert load_service_config(path) == good
    assert good.tokens["JPN"] != good.tokens["USA"] != good.admin_tokens[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("tokens: {JPN: short}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: tokens: expected JPN: a token of at least 16"):
        load_service_config(bad)
    bad.write_text("tokens: {JPN: aaaaaaaaaaaaaaaaaaaa}\nadmin_tokens: [aaaaaaaaaaaaaaaaaaaa]\n")
    with pytest.raises(ConfigError, match="every token distinct"):
        load_service_config(bad)
    bad.write_text("tokens: {}\nbogus: 1\n")
    with pytest.raises(ConfigError, match="bogus: expected no such field"):
        load_service_config(bad)
    bad.write_text("tokens: {}\nidentification: [{affiliation: friend, mode_3a: ['9999']}]\n")
    with pytest.raises(ConfigError, match="identification.0.mode_3a"):
        load_service_config(bad)
    with pytest.raises(ConfigError, match="nope.yaml: \\(file\\)"):
        load_service_config(tmp_path / "nope.yaml")


def test_websocket_survives_any_client_message(service):
    """Fuzz: whatever a client sends, it gets an error frame (or pong / full for the two valid
    messages) and the connection stays up."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    client, cfg, *_ = service
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=10,
    )
    messages = st.one_of(
        st.text(max_size=200),
        json_values.map(json.dumps),
        st.dictionaries(st.just("type"), st.text(max_size=10) | st.integers() | st.none()).map(json.dumps),
    )
    with client.websocket_connect(f"/api/v1/partners/AUS/stream?token={cfg.tokens['AUS']}") as ws:
        ws.receive_text()
        ws.receive_text()

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(messages)
        def check(text):
            ws.send_text(text)
            reply = json.loads(ws.receive_text())
            try:
                sent = json.loads(text)
                kind = sent.get("type") if isinstance(sent, dict) else None
            except ValueError:
                kind = None
            expected = {"full": "full", "ping": "pong"}.get(kind, "error")
            assert reply["type"] == expected

        check()
        ws.send_text(json.dumps({"type": "ping"}))
        assert json.loads(ws.receive_text())["type"] == "pong"


def test_the_replayer_is_a_live_source(run):
    from siap.service import LiveSource

    coal, policy, _ = run
    assert isinstance(PictureReplayer.from_coalition(coal, policy), LiveSource)
