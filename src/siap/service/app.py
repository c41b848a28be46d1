"""The HTTP / WebSocket API and the web COP (FastAPI).

``create_app(source, config)`` builds the application over any :class:`LiveSource` (the
runtime, or a :class:`PictureReplayer`). Endpoints (all JSON; docs/service.md has examples):

=========================================================  ========================================
``GET  /health``, ``GET /ready``                           liveness; readiness (a view per partner)
``GET  /openapi.json``                                     the OpenAPI document
``GET  /api/v1/whoami``                                    the caller's role and viewable partners
``GET  /api/v1/partners``                                  partners and their latest picture
``GET  /api/v1/partners/{p}/tracks``                       p's releasable picture (confirmed tracks)
``GET  /api/v1/partners/{p}/tracks/{id}``                  one track's state
``GET  /api/v1/partners/{p}/tracks/{id}/history``          one track's recent positions
``GET  /api/v1/partners/{p}/trails``                       every track's recent positions
``GET  /api/v1/partners/{p}/sensors``                      sensors whose data p may see
``GET  /api/v1/partners/{p}/metrics``                      latest picture against truth
``WS   /api/v1/partners/{p}/stream?token=``                full state, then deltas
``GET  /api/v1/clock``; ``POST /api/v1/clock/{pause,resume,speed,seek}``  exercise clock (admin)
``GET  /``                                                 the web COP (static, no internet)
=========================================================  ========================================

Access: ``Authorization: Bearer TOKEN`` (the WebSocket also takes ``?token=``, since browsers
cannot set its headers). A partner's token reaches only that partner's picture; an admin token
reaches every partner and the clock. No or an unknown token: 401; another partner's data or a
control action without the admin role: 403, written to the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
import uuid
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from siap import geo
from siap.service.config import ServiceConfig
from siap.service.hub import PictureHub, View, delta_frame
from siap.service.live import LiveSource
from siap.service.tracks import Identifier
from siap.sharing.audit import AuditLog
from siap.sharing.signing import NodeIdentity, TrustStore

__all__ = ["create_app", "Principal"]

log = logging.getLogger(__name__)
API = "/api/v1"
COVERAGE_TARGET_ALT_M = 9_000.0  # coverage circles for targets near FL300


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``role`` "admin" or "partner"; ``partner`` for a partner token."""

    role: str
    partner: str | None

    def describe(self) -> str:
        return "admin" if self.role == "admin" else f"partner {self.partner}"


class SpeedRequest(BaseModel):
    speed: float = Field(gt=0, le=10_000, description="picture seconds per wall second")


class SeekRequest(BaseModel):
    time_s: float = Field(description="Unix seconds UTC, within the run's [start_s, end_s]")


class _Service:
    """What the endpoints share: the source, the hub, the config, the audit log."""

    def __init__(self, source: LiveSource, config: ServiceConfig, hub: PictureHub) -> None:
        self.source = source
        self.config = config
        self.hub = hub
        # The service is a node of its own: its own keys sign its audit log, bound to this run.
        # Its public key (with a fingerprint to compare) is written beside the log for the
        # operator to pin elsewhere; the log's signed head is in AUDIT.head (siap.sharing.audit).
        operator = config.operator or (list(source.partners)[0] if list(source.partners) else "JPN")
        self.identity = NodeIdentity.generate("siap-service", operator)
        self.run_id = uuid.uuid4().hex[:16]
        self.audit = AuditLog(config.audit_log, identity=self.identity, run_id=self.run_id)
        self.trust = TrustStore([self.identity])
        self.trust.save(Path(str(config.audit_log) + ".trust.yaml"))
        log.info(
            "service audit log %s: node siap-service, run %s, key fingerprint %s",
            config.audit_log, self.run_id, self.identity.trusted().fingerprint,
        )
        self._tokens = [(tok, Principal("partner", p)) for p, tok in config.tokens.items()]
        self._tokens += [(tok, Principal("admin", None)) for tok in config.admin_tokens]
        self._metrics_cache: dict[str, tuple[int, dict]] = {}
        self.started = False

    def principal(self, token: str | None) -> Principal | None:
        if not token:
            return None
        found = None
        for known, who in self._tokens:  # compare with every token: no early exit on a match
            if hmac.compare_digest(known.encode(), token.encode()):
                found = who
        return found

    def refuse(self, who: Principal | None, what: str, partner: str | None, status: int, reason: str) -> None:
        kind = "refuse" if status == 403 else "unauthenticated"
        try:
            self.audit.append(
                kind, role=who.role if who else None, caller=who.partner if who else None,
                target_partner=partner, action=what, status=status, reason=reason,
            )
        except Exception:  # the refusal stands even if the log cannot be written
            log.exception("service: could not write the audit entry of a refusal")


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _svc(request: Request) -> _Service:
    return request.app.state.service


def _caller(request: Request) -> Principal:
    svc = _svc(request)
    who = svc.principal(_bearer(request))
    if who is None:
        svc.refuse(None, f"{request.method} {request.url.path}", None, 401, "missing or unknown bearer token")
        raise HTTPException(401, "missing or unknown bearer token", headers={"WWW-Authenticate": "Bearer"})
    return who


Caller = Annotated[Principal, Depends(_caller)]


def _viewable(svc: _Service, who: Principal, partner: str, what: str) -> None:
    if partner not in svc.hub.partners:
        raise HTTPException(404, f"no partner {partner!r} (partners: {', '.join(svc.hub.partners)})")
    if who.role == "admin" or who.partner == partner:
        return
    svc.refuse(who, what, partner, 403, f"{who.describe()} may not see the picture of {partner}")
    raise HTTPException(403, f"{who.describe()} may not see the picture of {partner}")


def _admin(svc: _Service, who: Principal, what: str) -> None:
    if who.role != "admin":
        svc.refuse(who, what, None, 403, "exercise control needs the admin role")
        raise HTTPException(403, "exercise control needs the admin role")


def _view_or_404(svc: _Service, partner: str) -> View:
    view = svc.hub.view(partner)
    if view is None:
        raise HTTPException(404, f"no picture of {partner} yet")
    return view


def _sensor_json(s, now_s: float) -> dict[str, Any]:
    lat, lon, alt = s.lat_deg, s.lon_deg, s.alt_m
    airborne = s.platform_track is not None and len(s.platform_track) > 0
    if airborne:
        pt = s.platform_track
        lat = float(np.interp(now_s, pt["time_s"], pt["lat_deg"]))
        lon = float(np.interp(now_s, pt["time_s"], pt["lon_deg"]))
        alt = float(np.interp(now_s, pt["time_s"], pt["alt_m"]))
    radius = float(s.coverage_radius_m(COVERAGE_TARGET_ALT_M))
    return {
        "id": s.id,
        "partner": s.partner,
        "type": str(s.type),
        "kind": getattr(s.kind, "name", str(s.kind)),
        "lat": lat,
        "lon": lon,
        "alt_m": alt,
        "airborne": airborne,
        "max_range_m": float(s.max_range_m),
        "coverage_radius_m": radius if np.isfinite(radius) else None,
        "coverage_target_alt_m": COVERAGE_TARGET_ALT_M,
        "scan_period_s": float(s.scan_period_s),
    }


def _sensor_visible(svc: _Service, who: Principal, partner: str, sensor) -> bool:
    """A partner sees its own sensors and those whose data label is releasable to it."""
    if sensor.partner == partner:
        return True
    policy = svc.source.policy
    if policy.owner_or_none(sensor.id) is None:
        return False
    return bool(policy.releasable(policy.sensor_label(sensor.id), partner))


def truth_at(truth: np.ndarray, time_s: float) -> np.ndarray:
    """Truth at ``time_s``: each object's last sample at or before it (within one sample
    step), moved on by its velocity to ``time_s`` (the picture's time)."""
    if truth is None or len(truth) == 0:
        return truth[:0] if truth is not None else None
    times = np.unique(truth["time_s"])
    i = int(np.searchsorted(times, time_s, side="right")) - 1
    if i < 0:
        return truth[:0]
    t0 = times[i]
    step = float(np.min(np.diff(times))) if len(times) > 1 else 0.0
    if time_s - t0 > max(step, 1e-3) * 1.5:
        return truth[:0]
    snap = truth[truth["time_s"] == t0].copy()
    dt = float(time_s - t0)
    if dt:
        snap["pos_ecef_m"] += snap["vel_ecef_mps"] * dt
        snap["lat_deg"], snap["lon_deg"], snap["alt_m"] = geo.ecef_to_geodetic(snap["pos_ecef_m"])
    snap["time_s"] = time_s
    return snap


def in_coverage(truth: np.ndarray, sensors) -> np.ndarray:
    """Mask of truth states inside at least one sensor's coverage (its range limit for a
    target at that altitude: instrumented range, 4/3-earth horizon, minimum elevation),
    by straight-line distance from the site (the platform position for an airborne radar)."""
    mask = np.zeros(len(truth), dtype=bool)
    for s in sensors:
        if s.platform_track is not None and len(s.platform_track):
            t = float(truth["time_s"][0]) if len(truth) else 0.0
            pt = s.platform_track
            site = (np.interp(t, pt["time_s"], pt["lat_deg"]), np.interp(t, pt["time_s"], pt["lon_deg"]),
                    np.interp(t, pt["time_s"], pt["alt_m"]))
        else:
            site = (s.lat_deg, s.lon_deg, s.alt_m)
        site_ecef = geo.geodetic_to_ecef(*site)[0]
        dist = np.linalg.norm(truth["pos_ecef_m"] - site_ecef, axis=1)
        mask |= dist <= np.asarray(s.coverage_radius_m(truth["alt_m"]))
    return mask


def _metrics(svc: _Service, view: View) -> dict[str, Any]:
    """GOSPA / OSPA and SIAP completeness etc. of one picture at one time (one step, so a
    track is associated to a truth object by that step alone)."""
    from siap.evaluation import evaluate

    cached = svc._metrics_cache.get(view.partner)
    if cached is not None and cached[0] == view.seq:
        return cached[1]
    truth = svc.source.truth
    if truth is None:
        raise HTTPException(404, "no truth is known for this source")
    snap = truth_at(truth, view.time_s)
    covered = snap[in_coverage(snap, svc.source.sensors)] if len(svc.source.sensors) else snap
    tracks = view.picture.tracks.copy()
    tracks["time_s"] = view.time_s
    ev = evaluate(covered, tracks, times="truth", consec_pairs_confirm=1, consec_misses_end=1)
    summary = ev.summary()
    out = {
        "partner": view.partner,
        "seq": view.seq,
        "time_s": view.time_s,
        "truth_objects_alive": int(len(snap)),
        "truth_objects_in_coverage": int(len(covered)),
        "tracks": int(len(tracks)),
        "note": "the displayed picture (confirmed and coasting tracks releasable to the partner) "
        "against the truth objects alive at that time inside some sensor's coverage; one time "
        "step, so SIAP association uses that step alone",
        "metrics": {
            k: v for k, v in summary.items()
            if isinstance(v, int | float) and (not isinstance(v, float) or np.isfinite(v))
        },
    }
    svc._metrics_cache[view.partner] = (view.seq, out)
    return out


def create_app(source: LiveSource, config: ServiceConfig, *, start_source: bool = True) -> FastAPI:
    """The service over ``source`` (runtime or replayer). The app's lifespan starts the hub
    and (with ``start_source``) the source, and stops both on shutdown."""
    identifier = Identifier(config.identification, config.default_affiliation)
    hub = PictureHub(source.policy, source.partners, identifier=identifier, history_points=config.history_points)
    source.add_sink(hub)
    svc = _Service(source, config, hub)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        hub.start()
        if start_source:
            source.start()
        svc.started = True
        try:
            yield
        finally:
            svc.started = False
            if start_source:
                source.stop()
            hub.stop()
            svc.audit.close()

    app = FastAPI(
        title="siap live service",
        version="1",
        description="Per-partner live air picture: tracks, histories, sensors, metrics, and a WebSocket stream.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI loads from a CDN; the OpenAPI document stays at /openapi.json
        redoc_url=None,
    )
    app.state.service = svc
    app.state.hub = hub

    static = resources.files("siap.service") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(str(static / "index.html"), headers={"Cache-Control": "no-store"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)

    @app.get("/health", tags=["service"])
    def health() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["service"])
    def ready():
        """Readiness: the source runs and every partner has a picture (503 until then)."""
        ok = svc.started and hub.ready()
        body = {"ready": ok, "partners": {p: (hub.view(p).seq if hub.view(p) else None) for p in hub.partners}}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get(f"{API}/whoami", tags=["access"])
    def whoami(who: Caller) -> dict:
        """The caller's role and the partners whose picture it may view."""
        viewable = list(hub.partners) if who.role == "admin" else [who.partner]
        return {"role": who.role, "partner": who.partner, "viewable": viewable, "policy": source.policy.name}

    @app.get(f"{API}/partners", tags=["pictures"])
    def partners(who: Caller) -> dict:
        """Every partner; for those the caller may view, its latest picture's time and size."""
        out = []
        for p in hub.partners:
            row: dict[str, Any] = {"partner": p, "viewable": who.role == "admin" or who.partner == p}
            v = hub.view(p)
            if row["viewable"] and v is not None:
                row.update(seq=v.seq, time_s=v.time_s, tracks=len(v.tracks))
            out.append(row)
        return {"partners": out}

    @app.get(f"{API}/partners/{{partner}}/tracks", tags=["pictures"])
    def tracks(partner: str, request: Request, who: Caller) -> Response:
        """The partner's latest releasable picture: confirmed and coasting tracks."""
        _viewable(svc, who, partner, f"GET {request.url.path}")
        v = _view_or_404(svc, partner)
        # the tracks' JSON text the stream sends (encoded once per picture), not re-encoded
        head = json.dumps({"partner": partner, "seq": v.seq, "time_s": v.time_s})[:-1]
        return Response(head + ',"tracks":[' + ",".join(v.texts.values()) + "]}", media_type="application/json")

    @app.get(f"{API}/partners/{{partner}}/tracks/{{track_id}}", tags=["pictures"])
    def track(partner: str, track_id: str, request: Request, who: Caller) -> dict:
        """One track's latest state (404 if the partner's picture does not hold it)."""
        _viewable(svc, who, partner, f"GET {request.url.path}")
        v = _view_or_404(svc, partner)
        t = v.tracks.get(track_id)
        if t is None:
            raise HTTPException(404, f"track {track_id} is not in the picture of {partner}")
        return t

    @app.get(f"{API}/partners/{{partner}}/tracks/{{track_id}}/history", tags=["pictures"])
    def track_history(partner: str, track_id: str, request: Request, who: Caller) -> dict:
        """One track's recent positions, oldest first (bounded: ``history_points``)."""
        _viewable(svc, who, partner, f"GET {request.url.path}")
        h = hub.history(partner, track_id)
        if h is None:
            raise HTTPException(404, f"track {track_id} is not in the picture of {partner}")
        return {"partner": partner, "id": track_id, "points": [dict(zip(("t", "lat", "lon", "alt_m"), p, strict=True)) for p in h]}

    @app.get(f"{API}/partners/{{partner}}/trails", tags=["pictures"])
    def trails(partner: str, request: Request, who: Caller, points: int = 30) -> dict:
        """Recent positions of every shown track: ``{id: [[t, lat, lon], ...]}``."""
        _viewable(svc, who, partner, f"GET {request.url.path}")
        if not 1 <= points <= config.history_points:
            raise HTTPException(422, f"points: expected 1..{config.history_points}")
        return {"partner": partner, "trails": {k: [[t, la, lo] for t, la, lo, _ in v] for k, v in hub.trails(partner, points).items()}}

    @app.get(f"{API}/partners/{{partner}}/sensors", tags=["pictures"])
    def sensors(partner: str, request: Request, who: Caller) -> dict:
        """Sensor sites and coverage (targets at 9 km) whose data the partner may see."""
        _viewable(svc, who, partner, f"GET {request.url.path}")
        now = source.now_s
        return {
            "partner": partner,
            "sensors": [_sensor_json(s, now) for s in source.sensors if _sensor_visible(svc, who, partner, s)],
        }

    @app.get(f"{API}/partners/{{partner}}/metrics", tags=["pictures"])
    def metrics(partner: str, request: Request, who: Caller) -> dict:
        """The latest displayed picture against truth at its time (404 without truth)."""
        _viewable(svc, who, partner, f"GET {request.url.path}")
        return _metrics(svc, _view_or_404(svc, partner))

    def clock_state() -> dict:
        return {
            "now_s": source.now_s, "start_s": source.start_s, "end_s": source.end_s,
            "speed": source.speed, "paused": source.paused,
        }

    @app.get(f"{API}/clock", tags=["exercise control"])
    def clock(who: Caller) -> dict:
        """The exercise clock: picture time, run bounds, speed, paused."""
        return clock_state()

    def control(who: Principal, request: Request, action, **details) -> dict:
        _admin(svc, who, f"{request.method} {request.url.path}")
        try:
            action()
        except ValueError as e:
            raise HTTPException(422, str(e)) from None
        svc.audit.append("control", action=request.url.path.rsplit("/", 1)[-1], **details)
        return clock_state()

    @app.post(f"{API}/clock/pause", tags=["exercise control"])
    def pause(request: Request, who: Caller) -> dict:
        return control(who, request, source.pause)

    @app.post(f"{API}/clock/resume", tags=["exercise control"])
    def resume(request: Request, who: Caller) -> dict:
        return control(who, request, source.resume)

    @app.post(f"{API}/clock/speed", tags=["exercise control"])
    def set_speed(body: SpeedRequest, request: Request, who: Caller) -> dict:
        return control(who, request, lambda: source.set_speed(body.speed), speed=body.speed)

    @app.post(f"{API}/clock/seek", tags=["exercise control"])
    def seek(body: SeekRequest, request: Request, who: Caller) -> dict:
        return control(who, request, lambda: source.seek(body.time_s), time_s=body.time_s)

    @app.websocket(f"{API}/partners/{{partner}}/stream")
    async def stream(websocket: WebSocket, partner: str) -> None:
        await _stream(svc, websocket, partner)

    return app


async def _stream(svc: _Service, ws: WebSocket, partner: str) -> None:
    """One client: a ``full`` frame on connect, then ``delta`` frames as views arrive.

    The client's state is what it was last sent; when it is slow, views it had no time for
    are skipped and the next frame is a delta from its own last state to the latest view (the
    hub's shared delta when it is exactly one behind). Client messages: ``{"type":"full"}``
    (send the full state), ``{"type":"ping"}`` (answered ``pong``); anything else gets an
    ``error`` frame. Close codes: 4401 no/unknown token, 4403 not allowed, 4404 no partner,
    4408 the client stopped accepting frames for ``send_timeout_s``.
    """
    token = ws.query_params.get("token") or _bearer(ws)  # type: ignore[arg-type]
    who = svc.principal(token)
    await ws.accept()
    path = f"WS {ws.url.path}"
    if who is None:
        svc.refuse(None, path, partner, 401, "missing or unknown token")
        await ws.close(code=4401, reason="missing or unknown token")
        return
    if partner not in svc.hub.partners:
        await ws.close(code=4404, reason=f"no partner {partner}")
        return
    if who.role != "admin" and who.partner != partner:
        reason = f"{who.describe()} may not see the picture of {partner}"
        svc.refuse(who, path, partner, 403, reason)
        await ws.close(code=4403, reason=reason)
        return

    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    replies: deque[str] = deque(maxlen=svc.config.control_queue)
    state = {"want_full": True}

    def notify() -> None:
        loop.call_soon_threadsafe(wake.set)

    sub = svc.hub.subscribe(partner, notify)

    async def receiver() -> None:
        while True:
            text = await ws.receive_text()
            try:
                msg = json.loads(text)
                kind = msg.get("type") if isinstance(msg, dict) else None
            except ValueError:
                kind, msg = None, None
            if kind == "full":
                state["want_full"] = True
            elif kind == "ping":
                replies.append(json.dumps({"type": "pong", "time_s": time.time()}))
            else:
                replies.append(json.dumps({"type": "error", "error": "bad message",
                                           "detail": 'expected {"type": "full"} or {"type": "ping"}'}))
            wake.set()

    async def sender() -> None:
        await ws.send_text(json.dumps({
            "type": "hello", "role": who.role, "viewer": who.partner, "partner": partner,
            "policy": svc.source.policy.name,
        }))
        last: View | None = None
        timeout = svc.config.send_timeout_s
        while True:
            while replies:
                await asyncio.wait_for(ws.send_text(replies.popleft()), timeout)
            view = svc.hub.view(partner)
            if view is not None and (last is None or view.seq != last.seq or state["want_full"]):
                if state["want_full"] or last is None or view.reset:
                    frame = view.full_text
                elif view.seq == last.seq + 1:
                    frame = view.delta_text
                else:  # skipped views: diff from what this client holds
                    frame = delta_frame(partner, view.seq, view.time_s, last.seq, last.texts, view.texts)
                state["want_full"] = False
                await asyncio.wait_for(ws.send_text(frame), timeout)
                last = view
                continue
            await wake.wait()
            wake.clear()

    tasks = [asyncio.create_task(receiver()), asyncio.create_task(sender())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        svc.hub.unsubscribe(sub)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
    for t in done:
        exc = t.exception() if not t.cancelled() else None
        if isinstance(exc, asyncio.TimeoutError):
            log.warning("service: dropping a %s client of %s: it accepted no frame for %.0f s",
                        who.describe(), partner, svc.config.send_timeout_s)
            # the close frame cannot pass a full buffer either: give it a moment, then leave
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(ws.close(code=4408, reason="client too slow"), 1.0)
        elif exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError):
            log.warning("service: stream of %s ended: %r", partner, exc)
