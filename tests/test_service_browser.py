"""The web COP in a real browser (Debian's chromium, headless, through Playwright) against the
service on a loopback port: tracks on the map equal the API's, the track panel, the admin's
partner switch (a track not releasable to the partner is absent from the page and from its
WebSocket traffic), time controls, and frame times with 2,000 tracks (reported, not
asserted). Screenshots go to out/service/."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from service_support import ServerThread, coalition_run, restricted_rows, wait_for

from siap.service import PictureReplayer, ServiceConfig, create_app
from siap.service.synthetic import synthetic_pictures

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="/usr/bin/chromium absent (apt-get install chromium)"),
]
OUT = Path("out/service")
RESTRICTED = "SIAP//CONFIDENTIAL//REL TO JPN, USA"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--use-gl=swiftshader"])
        yield b
        b.close()


def open_cop(browser, url: str, token: str, errors: list):
    page = browser.new_page(viewport={"width": 1500, "height": 950})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/#token={token}")
    page.wait_for_function("window.cop && window.cop.ready && window.cop.trackCount() > 0", timeout=60_000)
    return page


def api(url: str, path: str, token: str) -> dict:
    import httpx

    r = httpx.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    r.raise_for_status()
    return r.json()


def click_track(page, track: dict) -> None:
    x, y = page.evaluate(
        "([lon, lat]) => { const p = window.cop.map.project([lon, lat]); return [p.x, p.y]; }",
        [track["lon"], track["lat"]],
    )
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)


def test_cop_shows_the_partner_picture_and_enforces_releasability(browser, tmp_path):
    OUT.mkdir(parents=True, exist_ok=True)
    coal, policy, sim = coalition_run()
    # AUS's picture as it would arrive if an upstream release filter had failed: some rows
    # carry a label not releasable to AUS. The service must never show them to AUS.
    pictures = dict(coal.coalition)
    pictures["AUS"] = restricted_rows(pictures["AUS"], RESTRICTED, every=4)
    secret = {str(i) for i in np.unique(pictures["AUS"]["track_id"][pictures["AUS"]["label"] == RESTRICTED])}
    source = PictureReplayer(pictures, policy, sensors=sim.sensors, truth=sim.truth, times=coal.times, speed=1.0)
    cfg = ServiceConfig.generate(policy.partners, audit_log=tmp_path / "audit.jsonl")
    admin = cfg.admin_tokens[0]
    errors: list[str] = []
    with ServerThread(create_app(source, cfg)) as srv:
        page = open_cop(browser, srv.url, admin, errors)
        source.pause()
        source.seek(source.end_s)
        want = api(srv.url, "/api/v1/partners/AUS/tracks", admin)
        assert page.evaluate("window.cop.partner") == "AUS"
        page.wait_for_function(f"window.cop.seq === {want['seq']}", timeout=30_000)
        page.wait_for_function(f"window.cop.shownCount() === {len(want['tracks'])}", timeout=30_000)
        page_ids = set(page.evaluate("[...window.cop.tracks.keys()]"))
        assert page_ids == {t["id"] for t in want["tracks"]}
        assert page.locator("#count").inner_text() == f"{len(want['tracks'])} tracks"
        page.wait_for_timeout(800)
        page.screenshot(path=str(OUT / "cop-overview.png"))

        # switch to JPN (admin), then back to AUS while recording AUS's WebSocket traffic
        frames: list[str] = []

        def on_ws(ws):
            if "/partners/AUS/stream" in ws.url:
                ws.on("framereceived", lambda payload: frames.append(payload if isinstance(payload, str) else payload.decode()))

        page.on("websocket", on_ws)
        page.select_option("#partner", "JPN")
        jpn = api(srv.url, "/api/v1/partners/JPN/tracks", admin)
        page.wait_for_function(f"window.cop.partner === 'JPN' && window.cop.trackCount() === {len(jpn['tracks'])}", timeout=30_000)
        jpn_ids = set(page.evaluate("[...window.cop.tracks.keys()]"))
        assert jpn_ids == {t["id"] for t in jpn["tracks"]}
        in_both = secret & jpn_ids
        assert in_both, "the relabelled tracks are JPN picture tracks too (shown to JPN)"
        page.select_option("#partner", "AUS")
        page.wait_for_function(f"window.cop.partner === 'AUS' && window.cop.trackCount() === {len(want['tracks'])}", timeout=30_000)
        aus_ids = set(page.evaluate("[...window.cop.tracks.keys()]"))
        assert not aus_ids & secret
        wait_for(lambda: any('"type":"full"' in f for f in frames), what="AUS's full frame")
        for f in frames:
            msg = json.loads(f)
            for t in msg.get("tracks", []) + msg.get("added", []) + msg.get("changed", []):
                assert t["id"] not in secret
                assert policy.releasable(t["label"], "AUS")

        # the track panel
        track = max(want["tracks"], key=lambda t: (t["callsign"] is not None, t["n_updates"]))
        page.evaluate("([lon, lat]) => window.cop.map.jumpTo({center: [lon, lat], zoom: 7})", [track["lon"], track["lat"]])
        page.wait_for_timeout(1000)
        click_track(page, track)
        page.wait_for_selector("#panel:not([hidden])", timeout=10_000)
        title = page.locator("#panel-title").inner_text()
        assert track["tn"] in title
        rows = dict(zip(page.locator("#panel-table th").all_inner_texts(), page.locator("#panel-table td").all_inner_texts(), strict=True))
        assert rows["track id"] == track["id"]
        assert rows["label / releasability"] == track["label"]
        assert rows["sensors"] == ", ".join(track["sensors"].split(","))
        assert rows["affiliation"].startswith(track["affiliation"])
        assert rows["position σ"] == f"{track['pos_sigma_m']:.0f} m"
        page.wait_for_timeout(500)
        page.screenshot(path=str(OUT / "cop-track-panel.png"))

        # time controls call the service
        page.click("#btn-pause")  # the clock is paused: the button resumes
        wait_for(lambda: not source.paused, what="resume through the COP")
        page.select_option("#speed", "5")
        wait_for(lambda: source.speed == 5.0, what="speed through the COP")
    assert not errors, errors


def test_cop_on_the_live_runtime_pauses_seeks_and_sets_speed(browser, tmp_path):
    """The COP served over the live runtime (what `siap serve SCENARIO` runs): its tracks are
    the API's, and its time controls drive the runtime's clock (pause, seek back: the run
    restarts and fast-forwards, speed, resume)."""
    from siap.runtime import ReplayClock, Runtime
    from siap.scenario import load_scenario

    sc = load_scenario("pacific").model_copy(update={"duration_s": 60.0})
    rt = Runtime.from_scenario(sc, clock=ReplayClock(speed=2.0), hold_at_end=True)
    cfg = ServiceConfig.generate(rt.partners, audit_log=tmp_path / "audit.jsonl")
    admin = cfg.admin_tokens[0]
    errors: list[str] = []
    with ServerThread(create_app(rt, cfg)) as srv:
        page = open_cop(browser, srv.url, admin, errors)
        partner = page.evaluate("window.cop.partner")
        page.click("#btn-pause")
        wait_for(lambda: rt.paused, what="pause through the COP")
        # seek back through the COP's time slider: the runtime restarts and fast-forwards
        target = sc.start_time_s + 20.0
        page.eval_on_selector("#seek", "(e, v) => { e.value = v; e.dispatchEvent(new Event('change')); }", target)
        wait_for(lambda: (p := rt.picture(partner)) is not None and p.time_s == target, timeout_s=120, what="the seek")
        want = wait_for(lambda: (w := api(srv.url, f"/api/v1/partners/{partner}/tracks", admin))["time_s"] == target and w,
                        what="the picture at the seek time")
        assert want["tracks"]
        page.wait_for_function(f"window.cop.seq === {want['seq']}", timeout=30_000)
        page.wait_for_function(f"window.cop.shownCount() === {len(want['tracks'])}", timeout=30_000)
        assert set(page.evaluate("[...window.cop.tracks.keys()]")) == {t["id"] for t in want["tracks"]}
        assert rt.paused and rt.now_s == target
        page.select_option("#speed", "5")
        wait_for(lambda: rt.speed == 5.0, what="speed through the COP")
        page.click("#btn-pause")  # paused: the button resumes
        wait_for(lambda: not rt.paused, what="resume through the COP")
        wait_for(lambda: rt.picture(partner).time_s > target, what="the runtime moving on")
        page.wait_for_timeout(1500)
        page.screenshot(path=str(OUT / "cop-runtime.png"))
    assert rt.error is None
    assert not errors, errors


def test_partner_token_sees_only_its_own_picture(browser, tmp_path):
    coal, policy, sim = coalition_run()
    source = PictureReplayer.from_coalition(coal, policy, sensors=sim.sensors, truth=sim.truth)
    cfg = ServiceConfig.generate(policy.partners, audit_log=tmp_path / "audit.jsonl")
    errors: list[str] = []
    with ServerThread(create_app(source, cfg)) as srv:
        page = open_cop(browser, srv.url, cfg.tokens["AUS"], errors)
        assert page.evaluate("window.cop.who.role") == "partner"
        assert page.locator("#partner option").all_inner_texts() == ["AUS"]
        assert page.locator(".controls").is_hidden()
        sensors = set(page.locator("#source option").all_inner_texts())
        assert "JPN-GR-GOTO" not in sensors and "JPN-GR-NOTO" in sensors
    assert not errors, errors


def test_frame_time_with_2000_tracks(browser, tmp_path):
    """2,000 tracks updated every second: frame intervals and the page's per-update work,
    written to out/service/cop-2000-tracks.json (measured, not asserted)."""
    from siap.sharing.policy import load_policy

    policy = load_policy("pacific")
    pictures = synthetic_pictures(2000, 40, ["USA"], policy, step_s=1.0)
    source = PictureReplayer(pictures, policy, speed=1.0)
    cfg = ServiceConfig.generate(policy.partners, audit_log=tmp_path / "audit.jsonl")
    errors: list[str] = []
    with ServerThread(create_app(source, cfg)) as srv:
        page = open_cop(browser, srv.url, cfg.tokens["USA"], errors)
        page.wait_for_function("window.cop.trackCount() === 2000", timeout=60_000)
        page.evaluate(
            """() => { window.__raf = []; let last = performance.now();
            const f = (t) => { window.__raf.push(t - last); last = t; if (window.__raf.length < 100000) requestAnimationFrame(f); };
            requestAnimationFrame(f); window.__frames0 = window.cop.stats.frames;
            window.cop.stats.renderMs.length = 0; window.cop.stats.applyMs.length = 0; }"""
        )
        t0 = time.monotonic()
        page.wait_for_timeout(10_000)
        wall = time.monotonic() - t0
        raf = page.evaluate("window.__raf.slice(1)")
        stats = page.evaluate("({render: window.cop.stats.renderMs, apply: window.cop.stats.applyMs, frames: window.cop.stats.frames - window.__frames0})")
        assert stats["frames"] >= 3  # updates kept arriving
        assert page.evaluate("window.cop.trackCount()") == 2000
        page.screenshot(path=str(OUT / "cop-2000-tracks.png"))
    result = {
        "tracks": 2000,
        "wall_s": round(wall, 1),
        "updates_received": stats["frames"],
        "animation_frames": len(raf),
        "frame_interval_ms": {
            "p50": round(statistics.median(raf), 1),
            "p95": round(float(np.percentile(raf, 95)), 1),
            "max": round(max(raf), 1),
        },
        "apply_update_ms_p50": round(statistics.median(stats["apply"]), 1),
        "setdata_ms_p50": round(statistics.median(stats["render"]), 1),
        "renderer": "headless chromium, SwiftShader (software GL)",
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cop-2000-tracks.json").write_text(json.dumps(result, indent=2))
    print("COP with 2,000 tracks:", json.dumps(result))
    assert not errors, errors
