"""The node roles of a distributed coalition (``siap node ROLE --config FILE``).

* **gateway** (one per partner): simulates the partner's own sensors only (the stand-in for its
  ASTERIX / Mode S feeds), labels the plots from the policy, signs them with the *gateway's*
  key and publishes them, ``batch_s`` seconds of plots per envelope, on the partner's private
  subject ``siap.run.RUN.plots.P``, on a replay clock.
* **partner** (one per partner): the runtime (:class:`siap.runtime.Runtime`) hosting the
  partner's node. Its source is the gateway's subject (envelopes verified: gateway key,
  sequence, ownership, labels); it tracks, releases and signs per recipient
  (``siap.run.RUN.tracks.R``), fuses what it receives on ``siap.run.RUN.tracks.P`` into its
  coalition picture (the fusion role runs in this process: the runtime's partner node tracks
  *and* fuses), and publishes that picture, signed, on ``siap.run.RUN.picture.P``.
* **cop**: the web COP (:func:`siap.service.create_app`) over :class:`BusPictureSource`,
  which reads one partner's pictures from ``siap.run.RUN.picture.P``.

Each node reads only its own inputs and holds only its own private key. Gateway and partner
nodes write a snapshot after every step (``state_dir``) and resume from it when restarted; see
docs/transport.md ("Restart and exactly-once effect").
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import pickle
import signal
import struct
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from siap import records
from siap.errors import ConfigError
from siap.picture import Picture
from siap.runtime import ReplayClock, Runtime, node_id_for
from siap.runtime.groups import label_plots
from siap.sharing.labels import dominates, parse_cached
from siap.sharing.policy import Policy
from siap.sharing.signing import (
    NodeIdentity,
    RejectedMessage,
    RejectReason,
    SignedEnvelope,
    Signer,
    TrustStore,
    Verifier,
    decode_batch,
    encode_batch,
)
from siap.transport import NatsBus
from siap.transport.outbox import Outbox

from .config import NodeConfig
from .network import inbound_subjects, site_tag

log = logging.getLogger(__name__)

__all__ = [
    "BusPictureSource",
    "GatewaySource",
    "NodeRuntime",
    "PlotVerifier",
    "gateway_id_for",
    "open_bus",
    "run_cop",
    "run_gateway",
    "run_partner",
    "subject",
]

PICTURE_MAGIC = b"SIAPPIC1"
_PIC_HEAD = struct.Struct("<8sdQI")  # magic, time_s, seq, payload length


def subject(run: str, kind: str, partner: str) -> str:
    """``siap.run.RUN.KIND.P``: KIND is ``tracks`` (releases to P), ``plots`` (P's gateway to P's
    node) or ``picture`` (P's node to P's COP)."""
    return f"siap.run.{run}.{kind}.{partner}"


def gateway_id_for(partner: str) -> str:
    """The node id of a partner's sensor gateway (its signing identity)."""
    return f"{partner}-gateway"


def open_bus(cfg: NodeConfig, durable_prefix: str) -> NatsBus:
    """The node's connection to its partner site's server, in its partner's account."""
    n = cfg.nats
    return NatsBus(
        n.url, n.stream, subjects=inbound_subjects(cfg.partner), durable_prefix=durable_prefix,
        deliver_new=False, user=n.user, password=n.password,
        tls_ca_file=str(cfg.resolve(n.ca_file)) if n.ca_file is not None else None,
        placement_tags=[site_tag(cfg.partner)] if n.user is not None else (),
        name=f"siap-{cfg.role}-{cfg.partner}", unreachable_timeout_s=3600.0,
    )


def _load(cfg: NodeConfig):
    import siap
    from siap.sharing.policy import load_policy

    scenario = siap.load_scenario(cfg.ref(cfg.scenario))
    policy = load_policy(cfg.ref(cfg.policy))
    if cfg.partner not in policy.partners:
        raise ConfigError(f"{cfg.source_path}: partner: {cfg.partner!r} is not a partner of policy {policy.name} "
                          f"(have {', '.join(policy.partners)})")
    trust = TrustStore.load(cfg.resolve(cfg.trust))
    return scenario, policy, trust


class _Snapshots:
    """Atomic pickled snapshots in a node's state dir (``NAME.pkl``; written to a temporary
    file, fsynced and renamed, so a crash leaves the old or the new one, never half)."""

    def __init__(self, state_dir: Path | None, name: str) -> None:
        self.path = None if state_dir is None else Path(state_dir) / f"{name}.pkl"
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def load(self):
        if self.path is None or not self.path.exists():
            return None
        with open(self.path, "rb") as f:
            return pickle.load(f)

    def save(self, state) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


# Signer and Verifier state, saved and restored generically (the sharing room persists some of
# it itself in newer versions: per-recipient sequences, reserved blocks, dropped-row counts).
_SIGNER_STATE = ("next_seq", "_next", "_reserved")
_VERIFIER_STATE = ("last_seq", "counts", "dropped_rows")


def _pick(obj, names) -> dict:
    return {k: pickle.loads(pickle.dumps(getattr(obj, k))) for k in names if hasattr(obj, k)}


def _put(obj, saved: dict) -> None:
    for k, v in saved.items():
        setattr(obj, k, v)


def _to(recipient: str) -> dict:
    """``recipient=`` for a Signer that numbers (and may seal) per recipient."""
    return {"recipient": recipient} if "recipient" in inspect.signature(Signer.sign).parameters else {}


def _next_seq(signer: Signer, recipient: str) -> int:
    return signer.peek_seq(recipient) if hasattr(signer, "peek_seq") else signer.next_seq


def _stop_on_sigterm(stop: threading.Event) -> None:
    signal.signal(signal.SIGTERM, lambda *_: stop.set())


# ---------------------------------------------------------------------------------------
# gateway
# ---------------------------------------------------------------------------------------
def run_gateway(cfg: NodeConfig, *, stop: threading.Event | None = None) -> dict:
    """Publish the partner's sensors' plots, labelled and signed, as the replay clock passes
    them. Resumes after its last published envelope when restarted (state_dir)."""
    import siap

    scenario, policy, _trust = _load(cfg)
    mine = [s for s in scenario.sensors if s.partner == cfg.partner]
    if not mine:
        raise ConfigError(f"{cfg.source_path}: partner: scenario {scenario.name} has no sensor of {cfg.partner}")
    sim = siap.simulate(scenario.model_copy(update={"sensors": mine}))
    plots = sim.plots[np.argsort(sim.plots["time_s"], kind="stable")]
    identity = NodeIdentity.load(cfg.resolve(cfg.key), gateway_id_for(cfg.partner), cfg.partner)
    snaps = _Snapshots(cfg.state_dir and cfg.resolve(cfg.state_dir), "gateway")
    state = snaps.load() or {"next_t": scenario.start_time_s + cfg.batch_s, "next_seq": 1, "sent": 0, "plots": 0}
    signer = Signer(identity, first_seq=state["next_seq"])
    clock = ReplayClock(speed=cfg.clock.speed, wall_anchor_s=cfg.clock.wall_start_s)
    clock.start(scenario.start_time_s)
    stop = stop or threading.Event()
    _stop_on_sigterm(stop)
    subj = subject(cfg.run, "plots", cfg.partner)
    end = cfg.end_s(scenario)
    with open_bus(cfg, cfg.durable_prefix) as bus:
        t = state["next_t"]
        while t < end + cfg.batch_s and not stop.is_set():
            if not clock.wait_until(t):
                continue
            lo = np.searchsorted(plots["time_s"], t - cfg.batch_s, side="right")
            hi = np.searchsorted(plots["time_s"], t, side="right")
            batch = label_plots(plots[lo:hi], policy)
            # an empty batch is sent too: the partner node's "nothing before t" (and the count)
            envs = signer.sign_batch(batch, "plots", time_s=t, **_to(cfg.partner)) if len(batch) else [
                signer.sign(encode_batch(batch), label=policy.sensor_label(mine[0].id), kind="plots", time_s=t,
                            **_to(cfg.partner))]
            for env in envs:
                bus.publish(subj, env.to_bytes())  # same bytes after a restart: stored once
            state = {"next_t": t + cfg.batch_s, "next_seq": _next_seq(signer, cfg.partner),
                     "sent": state["sent"] + len(envs), "plots": state["plots"] + int(hi - lo)}
            snaps.save(state)
            t = state["next_t"]
        summary = {"role": "gateway", "partner": cfg.partner, **state, "duplicates": sum(bus.duplicates.values())}
    log.info("gateway %s done: %s", cfg.partner, summary)
    return summary


# ---------------------------------------------------------------------------------------
# partner node
# ---------------------------------------------------------------------------------------
class PlotVerifier(Verifier):
    """Checks the plot envelopes of a partner's own gateway: signature (gateway key), sequence
    (replay), ownership (every sensor the partner's), labels (each row the envelope's label,
    which dominates the policy's sensor label). Raw plots never leave the partner, so the
    policy's plot-sharing rule does not apply. The time window is the stream's, both ways: a
    restarted node catches up on plots minutes old, and a node behind its gateway (or replaying
    a feed already stored) reads plots ahead of its clock; the runtime releases each plot at its
    time, and replays are refused by sequence number."""

    def __init__(self, trust: TrustStore, policy: Policy, partner: str, window_s: float = 24 * 3600.0) -> None:
        super().__init__(trust, policy, max_age_s=window_s, max_clock_skew_s=window_s, recipient=partner)
        self.gateway = gateway_id_for(partner)

    def _check(self, envelope, now_s):
        env, batch = super()._check(envelope, now_s)
        if env.origin_node != self.gateway or env.kind != "plots":
            raise RejectedMessage(RejectReason.NOT_OWNER,
                                  f"{env.kind} from {env.origin_node} on the plot feed of {self.gateway}", env.origin_node)
        return env, batch

    def _check_rows(self, env: SignedEnvelope, batch: np.ndarray) -> None:
        R = RejectReason
        label = parse_cached(env.label)
        for text in np.unique(batch["label"]).tolist():
            if parse_cached(text) != label:
                raise RejectedMessage(R.MISLABELLED, f"row label {text!r} differs from envelope label {env.label!r}", env.origin_node)
        for sid in np.unique(batch["sensor_id"]).tolist():
            owner = self.policy.owner_or_none(sid)
            if owner != env.origin_partner:
                raise RejectedMessage(R.NOT_OWNER, f"sensor {sid!r} is not {env.origin_partner}'s", env.origin_node)
            if not dominates(label, self.policy.sensor_label(sid)):
                raise RejectedMessage(R.MISLABELLED, f"label {env.label!r} below the policy's for {sid}", env.origin_node)


class GatewaySource:
    """The partner node's plot source: the gateway's envelopes from the bus, verified. Every
    accepted envelope's sequence number is recorded in :attr:`applied` (message accounting).
    Never ends (the run's ``end_s`` ends it)."""

    def __init__(self, bus: NatsBus, subj: str, verifier: PlotVerifier, now_fn) -> None:
        self.bus, self.subject, self.verifier, self.now_fn = bus, subj, verifier, now_fn
        self.applied: list[int] = []

    def __iter__(self):
        while True:
            out = []
            for data in self.bus.drain(self.subject, wait_s=0.5):
                try:
                    batch = self.verifier.verify(data, now_s=self.now_fn())
                except RejectedMessage:
                    continue  # counted and logged by the verifier; the feed goes on
                self.applied.append(self.verifier.last_seq[self.verifier.gateway])
                out.append(batch)
            if not out:
                yield records.empty_plots(0)
                continue
            plots = np.concatenate(out)
            yield plots[np.argsort(plots["time_s"], kind="stable")]


def release_key(subject: str, message: bytes) -> tuple:
    """Supersede key of an outgoing message: a release envelope's (origin node, label), so a
    newer state of the same tracks replaces an older one still waiting for the link."""
    try:
        env = SignedEnvelope.from_bytes(message)
    except Exception:  # noqa: BLE001 - not an envelope (a picture): one key per subject
        return ("other",)
    return (env.origin_node, env.label)


class _TimeGate:
    """Wraps the node's bus. Publishes go through the :class:`~siap.transport.outbox.Outbox`
    (never blocking the loop on a slow or cut link; a newer release supersedes a waiting older
    one). A drain of the node's inbound track subject hands out only the envelopes created at
    or before the step being run and holds later ones for later steps (a node catching up after
    a restart drains messages from its partners' future; fused at the right step instead of
    being refused as from the future)."""

    def __init__(self, bus: NatsBus, gated: str, outbox: Outbox) -> None:
        self.bus, self.gated, self.outbox = bus, gated, outbox
        self.step_s = -math.inf
        self.held: list[tuple[float, bytes]] = []

    def __getattr__(self, name):
        return getattr(self.bus, name)

    def publish(self, subj: str, message: bytes) -> None:
        self.outbox.publish(subj, message)

    def drain(self, subj: str, *args, **kwargs) -> list[bytes]:
        if subj != self.gated:
            return self.bus.drain(subj, *args, **kwargs)
        for data in self.bus.drain(subj, wait_s=0.2):
            try:
                t = SignedEnvelope.from_bytes(data).time_s
            except Exception:  # noqa: BLE001 - malformed: let the verifier refuse and count it
                t = -math.inf
            self.held.append((t, data))
        now = [d for t, d in self.held if t <= self.step_s]
        self.held = [(t, d) for t, d in self.held if t > self.step_s]
        return now


def _state(obj) -> dict:
    return {k: v for k, v in vars(obj).items() if not callable(v)}


class NodeRuntime(Runtime):
    """The runtime of one partner's node process: snapshots its state after every step and
    restores it on start (trackers, registration, fusers, verifier replay window, signer
    sequence, unreleased plots, bus positions, held envelopes, the schedule).

    Changes to :class:`~siap.runtime.Runtime`: none; this subclass overrides ``_restart``
    (restore after the fresh start) and ``_step`` (snapshot after each step)."""

    def __init__(self, *args, snapshots: _Snapshots, source: GatewaySource, gate: _TimeGate,
                 picture_subject: str, **kwargs) -> None:
        self.snapshots, self.source, self.gate = snapshots, source, gate
        self.picture_subject = picture_subject
        self.picture_seq = 1
        self.restored_from_s: float | None = None
        super().__init__(*args, **kwargs)

    def _restart(self) -> None:
        super()._restart()
        snap = self.snapshots.load()
        if snap is None:
            return
        (p,) = self.partners
        node = self.nodes[p]
        for obj, saved in zip([*node.trackers, *(node.registrations or []), node.coalition_fuser, node.own_fuser],
                              snap["parts"], strict=True):
            vars(obj).update(saved)
        for k, v in snap["node"].items():
            setattr(node, k, v)
        _put(node.verifier, snap["verifier"])
        _put(node.signer, snap["signer"])
        _put(self.source.verifier, snap["plot_verifier"])
        self.source.applied = list(snap["applied"])
        self._heads = [snap["head"]]
        self._due, self._reached = dict(snap["due"]), snap["reached"]
        self.plot_counts = Counter(snap["plot_counts_rt"])
        self.picture_seq = snap["picture_seq"]
        self.gate.held = list(snap["held"])
        for subj, seq in snap["positions"].items():
            self.gate.bus.rewind(subj, seq)
        self.restored_from_s = self._reached
        log.warning("%s node restored from its snapshot at %.1f", p, self._reached)

    def _step(self, t: float) -> None:
        self.gate.step_s = t
        super()._step(t)
        (p,) = self.partners
        node = self.nodes[p]
        picture = self.latest.get((p, "coalition"))
        if picture is not None and picture.time_s == t:
            self.gate.publish(self.picture_subject, seal_picture(node.identity, self.picture_seq, picture))
            self.picture_seq += 1
        bus = self.gate.bus
        self.snapshots.save({
            "parts": [_state(o) for o in [*node.trackers, *(node.registrations or []), node.coalition_fuser, node.own_fuser]],
            "node": {k: getattr(node, k) for k in ("local", "last_update_s", "updates", "plots_in")},
            "verifier": _pick(node.verifier, _VERIFIER_STATE), "signer": _pick(node.signer, _SIGNER_STATE),
            "plot_verifier": _pick(self.source.verifier, _VERIFIER_STATE),
            "applied": list(self.source.applied),
            "head": self._heads[0], "due": dict(self._due), "reached": t, "plot_counts_rt": dict(self.plot_counts),
            "picture_seq": self.picture_seq, "held": list(self.gate.held),
            "positions": {s: bus.position(s) for s in (self.source.subject, self.gate.gated)},
        })


def seal_picture(identity: NodeIdentity, seq: int, picture: Picture) -> bytes:
    """A partner's coalition picture for its COP: header, Arrow payload, Ed25519 signature."""
    payload = encode_batch(picture.tracks)
    head = _PIC_HEAD.pack(PICTURE_MAGIC, picture.time_s, seq, len(payload))
    return head + payload + identity.sign(head + payload)


def open_picture(data: bytes, trust: TrustStore, partner: str) -> tuple[int, Picture]:
    """(seq, picture) of a sealed picture of ``partner``'s node; ValueError if it does not verify."""
    if len(data) < _PIC_HEAD.size + 64:
        raise ValueError("picture message too short")
    magic, time_s, seq, n = _PIC_HEAD.unpack_from(data)
    if magic != PICTURE_MAGIC or len(data) != _PIC_HEAD.size + n + 64:
        raise ValueError("not a picture message")
    node = trust.get(node_id_for(partner))
    if node is None:
        raise ValueError(f"no key of {node_id_for(partner)} in the trust store")
    from cryptography.exceptions import InvalidSignature

    try:
        node.public_key.verify(data[-64:], data[:-64])
    except InvalidSignature:
        raise ValueError("picture signature does not verify") from None
    tracks = decode_batch(data[_PIC_HEAD.size:-64], records.TRACK_DTYPE)
    return int(seq), Picture(partner, float(time_s), tracks, "coalition")


def build_partner_runtime(cfg: NodeConfig, bus: NatsBus) -> NodeRuntime:
    from siap.pipeline import tracker_config_for

    scenario, policy, trust = _load(cfg)
    identity = NodeIdentity.load(cfg.resolve(cfg.key), node_id_for(cfg.partner), cfg.partner)
    clock = ReplayClock(speed=cfg.clock.speed, wall_anchor_s=cfg.clock.wall_start_s)
    budget = cfg.link_budget_bytes_per_s
    if isinstance(budget, dict):
        budget = {subject(cfg.run, "tracks", r): float(v) for r, v in budget.items()}
    gate = _TimeGate(bus, subject(cfg.run, "tracks", cfg.partner), Outbox(bus, release_key, budget))
    # the plot feed is checked against the step being run (a node catching up on a fast replay
    # clock would otherwise judge every stored plot by a clock far ahead of it)
    source = GatewaySource(bus, subject(cfg.run, "plots", cfg.partner), PlotVerifier(trust, policy, cfg.partner),
                           now_fn=lambda: gate.step_s)
    return NodeRuntime(
        policy, [source], sensor_ids=[s.id for s in scenario.sensors], tracker_config=tracker_config_for(scenario),
        clock=clock, bus=gate, hosted=[cfg.partner], update_period_s=cfg.update_period_s,
        start_s=scenario.start_time_s, end_s=cfg.end_s(scenario), registration=True,
        identities={cfg.partner: identity}, trust=trust, subject_prefix=f"siap.run.{cfg.run}.tracks",
        snapshots=_Snapshots(cfg.state_dir and cfg.resolve(cfg.state_dir), "partner"), source=source, gate=gate,
        picture_subject=subject(cfg.run, "picture", cfg.partner),
    )


def run_partner(cfg: NodeConfig, *, stop: threading.Event | None = None) -> dict:
    """Run the partner's node until the scenario ends (or SIGTERM); a summary with message
    accounting. Writes ``state_dir/summary.json`` when it ends."""
    stop = stop or threading.Event()
    _stop_on_sigterm(stop)
    with open_bus(cfg, cfg.durable_prefix) as bus:
        rt = build_partner_runtime(cfg, bus)
        rt.start()
        while rt._thread.is_alive():
            if stop.wait(0.2):
                rt.stop()
                break
        rt.join()
        rt.close()
        rt.gate.outbox.close(timeout_s=10.0)
        if rt.error is not None:
            raise rt.error
        res = rt.result
        node = rt.nodes[cfg.partner]
        summary = {
            "role": "partner", "partner": cfg.partner, "updates": node.updates, "stop_s": res.stop_s if res else None,
            "restored_from_s": rt.restored_from_s, "plot_envelopes_applied": len(rt.source.applied),
            "plot_envelopes_rejected": {k: v for k, v in rt.source.verifier.counts.items() if k != "accepted"},
            "tracks_accepted": int(node.verifier.counts.get("accepted", 0)),
            "tracks_rejected": {k: int(v) for k, v in node.verifier.counts.items() if k != "accepted"},
            "published": {k: int(v) for k, v in bus.published.items()},
            "superseded": {k: int(v) for k, v in rt.gate.outbox.superseded.items()},
            "sent_bytes": {k: int(v) for k, v in rt.gate.outbox.sent_bytes.items()},
            "duplicates": {k: int(v) for k, v in bus.duplicates.items()},
            "max_lag_s": round(res.max_lag_s, 3) if res else None,
            "run_wall_s": round(res.wall_s, 3) if res else None,
            "run_cpu_s": {k: round(v, 3) for k, v in res.cpu_s.items()} if res else None,
        }
        if cfg.state_dir is not None:
            d = cfg.resolve(cfg.state_dir)
            (d / "applied-plots.json").write_text(json.dumps(rt.source.applied))
            own = rt.latest.get((cfg.partner, "own"))
            coal = rt.latest.get((cfg.partner, "coalition"))
            if own is not None:
                records.write_parquet(own.tracks, d / "own.parquet")
            if coal is not None:
                records.write_parquet(coal.tracks, d / "coalition.parquet")
            (d / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


# ---------------------------------------------------------------------------------------
# COP
# ---------------------------------------------------------------------------------------
class BusPictureSource:
    """A live source (:class:`siap.service.live.LiveSource`) over one partner's pictures on the
    bus: the COP follows the network's clock, so pause/speed/seek are refused."""

    def __init__(self, bus: NatsBus, cfg: NodeConfig, policy: Policy, trust: TrustStore, scenario) -> None:
        self.bus, self.trust = bus, trust
        self.partners = [cfg.partner]
        self.policy = policy
        self.sensors: list = []
        self.truth = None
        self.start_s, self.end_s = scenario.start_time_s, scenario.end_time_s
        self.subject = subject(cfg.run, "picture", cfg.partner)
        self._sinks: list = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.latest: Picture | None = None
        self.counts: Counter[str] = Counter()

    @property
    def now_s(self) -> float:
        return self.latest.time_s if self.latest is not None else self.start_s

    speed = 1.0
    paused = False

    def add_sink(self, sink) -> None:
        self._sinks.append(sink)

    def poll(self, wait_s: float = 0.5) -> int:
        """Read what has arrived; hand each new picture to the sinks. Returns how many."""
        n = 0
        for data in self.bus.drain(self.subject, wait_s=wait_s):
            try:
                _seq, picture = open_picture(data, self.trust, self.partners[0])
            except ValueError as exc:
                self.counts["rejected"] += 1
                log.warning("COP %s: dropped a picture message: %s", self.partners[0], exc)
                continue
            self.counts["accepted"] += 1
            self.latest = picture
            for sink in self._sinks:
                try:
                    sink.on_picture(picture)
                except Exception:  # noqa: BLE001 - a sink never stops the feed
                    log.exception("COP sink failed")
            n += 1
        return n

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.poll(0.5)
                except Exception as exc:  # noqa: BLE001 - transport trouble: log, keep trying
                    log.warning("COP %s: %s", self.partners[0], exc)
                    time.sleep(0.5)

        self._thread = threading.Thread(target=loop, name="siap-cop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _refuse(self, *_a) -> None:
        raise ValueError("a COP node follows the network's clock: pause, speed and seek are not available")

    pause = resume = set_speed = seek = _refuse


def run_cop(cfg: NodeConfig) -> None:
    """Serve the partner's picture on 127.0.0.1:PORT until SIGTERM."""
    import uvicorn

    from siap.service import create_app
    from siap.service.config import load_service_config

    scenario, policy, trust = _load(cfg)
    service_cfg = load_service_config(cfg.resolve(cfg.cop.service_config))
    with open_bus(cfg, cfg.durable_prefix) as bus:
        source = BusPictureSource(bus, cfg, policy, trust, scenario)
        app = create_app(source, service_cfg)
        uvicorn.run(app, host=cfg.cop.host, port=cfg.cop.port, log_level="warning")
