"""The live runtime: the one loop every mode runs (demo, ``siap coalition``, node processes,
the service).

Sources push plot batches as time passes; each hosted partner node tracks its own source
groups and, on its own update period, snapshots, releases, signs and publishes its local
tracks and fuses whatever it has received by then; sinks get each new picture. No lockstep and
no coordinator: a partner's update never waits for another partner, so a late or silent
partner never stalls the others (its tracks age out of their fusers and come back when it
resumes). See docs/runtime.md.

The loop (one thread; every step is at one clock time ``t``):

1. wait for the clock to reach ``t``, the earliest next update of any hosted partner;
2. release every source plot with ``time_s <= t`` to the node of the partner owning its sensor;
3. every partner due at ``t`` tracks and publishes (in policy partner order);
4. every partner due at ``t`` fuses what it has received by now and hands its pictures to
   the sinks.

Steps 3 then 4 make a message published at ``t`` visible to a partner fusing at ``t`` (a
network with no delay). With a virtual clock the run is deterministic; with a replay or real
time clock the loop sleeps between steps, and when it is behind (CPU) it runs the due steps at
once and catches up (:attr:`RuntimeResult.max_lag_s`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siap import records
from siap.fusion import FusionConfig
from siap.picture import Picture
from siap.sharing.policy import Policy
from siap.sharing.signing import NodeIdentity, TrustStore
from siap.tracking import TrackerConfig
from siap.tracking.registration import estimates_table
from siap.transport import InProcessBus, MessageBus

from .clock import Clock, RealTimeClock, VirtualClock
from .groups import GROUP_SHIFT, group_index, label_plots, source_groups
from .partner import DEFAULT_SUBJECT_PREFIX, PartnerNode, UpdateSchedule, subject_for
from .sinks import QueuedSink, SinkSet
from .sources import SimulatorSource, is_restartable

__all__ = ["Runtime", "RuntimeResult", "node_id_for"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, float], None]
STAGES = ("release", "track", "publish", "fuse", "sinks")


def node_id_for(partner: str) -> str:
    """The node id of a partner's node (its signing identity)."""
    return f"{partner}-node"


@dataclass
class RuntimeResult:
    """What a run did: counts per partner, messages, rejections, CPU per stage."""

    partners: list[str]
    start_s: float
    stop_s: float  # clock time of the last step run
    updates: dict[str, int]
    plots: dict[str, int]  # released, dropped_unknown_sensor, dropped_bad_batch, dropped_paused
    messages: dict[str, int]  # published, delivered, accepted
    rejected: dict[str, dict[str, int]]  # partner -> reason -> count
    sink_errors: dict[str, int]
    tracker_stats: dict[str, dict[str, int]]
    biases: dict[str, dict[str, dict[str, float | int | bool]]]
    wall_s: float
    cpu_s: dict[str, float]  # loop thread CPU per stage (thread_time), and "total"
    max_lag_s: float = 0.0  # replay/real time: how far the loop fell behind the clock
    audit_paths: dict[str, Path] = field(default_factory=dict)


class Runtime:
    """The streaming runtime: clock, sources, partner nodes, bus and sinks.

    Parameters
    ----------
    policy:
        The coalition's releasability policy (:class:`siap.sharing.policy.Policy`).
    sources:
        Plot sources (see :mod:`siap.runtime.sources`): any iterables of PLOT_DTYPE batches.
    sensor_ids:
        The sensors of the run (every one declared in the policy); they make the source groups.
    tracker_config, fusion_config:
        The partners' tracker and fuser configurations.
    clock:
        :class:`VirtualClock` (default), :class:`ReplayClock` or :class:`RealTimeClock`.
    bus:
        The message bus (default: a new :class:`~siap.transport.InProcessBus`).
    hosted:
        The partners whose nodes run here (default: every policy partner). A NATS node hosts
        one; it publishes to the others over the bus all the same.
    update_period_s:
        Seconds between a partner's updates, one number for all or ``{partner: s}`` (others 1 s).
    update_times:
        Explicit update times instead of a period (one array for all, or ``{partner: array}``).
    start_s, end_s:
        The run's span; ``end_s`` None runs until :meth:`stop`.
    identities, trust:
        Signing keys of the hosted partners and the trust store; generated when omitted.
    audit_dir:
        Write each hosted partner's audit log ``audit-P.jsonl`` there (and ``trust.yaml``).
    sensors, truth:
        What the service shows: :class:`siap.sensors.base.SensorInfo` list, TRUTH_DTYPE array.
    hold_at_end:
        At ``end_s`` pause and keep the thread (and the last pictures) until :meth:`seek` or
        :meth:`stop`, instead of ending the run: what a served replay wants (the COP can seek
        back after the end).
    own_pictures:
        Also emit each partner's *own* picture (kind ``"own"``: its local tracks fused alone,
        a second fuser per node, about as much work again as the coalition picture). The
        evaluation and ``run_coalition`` need it; ``siap serve``/``siap replay`` and the bench's
        live run do not (False), unless a recording asks for it. Coalition pictures are the same
        either way.
    """

    def __init__(
        self,
        policy: Policy,
        sources: Iterable = (),
        *,
        sensor_ids: list[str],
        tracker_config: TrackerConfig,
        fusion_config: FusionConfig | None = None,
        clock: Clock | None = None,
        bus: MessageBus | None = None,
        hosted: list[str] | None = None,
        update_period_s: float | dict[str, float] = 1.0,
        update_times: np.ndarray | dict[str, np.ndarray] | None = None,
        start_s: float,
        end_s: float | None = None,
        registration: bool = False,
        identities: dict[str, NodeIdentity] | None = None,
        trust: TrustStore | None = None,
        audit_dir: str | Path | None = None,
        subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
        sensors: list | None = None,
        truth: np.ndarray | None = None,
        progress: ProgressFn | None = None,
        hold_at_end: bool = False,
        own_pictures: bool = True,
    ) -> None:
        self.policy = policy
        #: emit each partner's *own* picture (its own sensors alone, a second fuser per node)
        #: besides its coalition picture: the evaluation needs it, a live display does not
        self.own_pictures = bool(own_pictures)
        self.all_partners = list(policy.partners)
        hosted = list(self.all_partners if hosted is None else hosted)
        for p in hosted:
            if p not in self.all_partners:
                raise ValueError(f"policy {policy.name}: partners: no partner {p!r} (have {', '.join(self.all_partners)})")
        self.partners: list[str] = [p for p in self.all_partners if p in hosted]
        self.sources = list(sources)
        self.sensor_ids = sorted(set(sensor_ids))
        self.groups = source_groups(policy, self.sensor_ids)
        self.tracker_config = tracker_config
        self.fusion_config = fusion_config or FusionConfig(source_id_bits=GROUP_SHIFT)
        self.clock = clock if clock is not None else VirtualClock()
        self.bus = bus if bus is not None else InProcessBus()
        self._own_bus = bus is None
        self.registration = registration
        self.subject_prefix = subject_prefix
        self.start_s = float(start_s)
        self.end_s = None if end_s is None else float(end_s)
        self.sensors = sensors
        self.truth = truth
        self.progress = progress
        self.hold_at_end = bool(hold_at_end)
        self._periods = update_period_s
        self._times = update_times
        self.identities = identities or {p: NodeIdentity.generate(node_id_for(p), p) for p in self.partners}
        if trust is None:
            trust = TrustStore()
            for identity in self.identities.values():
                trust.add(identity)
        self.trust = trust
        self.run_id = uuid.uuid4().hex[:16]  # binds the audit logs to this run (siap.sharing.audit)
        self.audit_paths: dict[str, Path] = {}
        if audit_dir is not None:
            Path(audit_dir).mkdir(parents=True, exist_ok=True)
            self.audit_paths = {p: Path(audit_dir) / f"audit-{p}.jsonl" for p in self.partners}
            for path in self.audit_paths.values():  # a run starts new chains, signed by its keys
                path.unlink(missing_ok=True)
                Path(str(path) + ".head").unlink(missing_ok=True)
            trust.save(Path(audit_dir) / "trust.yaml")
        self.sinks = SinkSet()
        self.nodes: dict[str, PartnerNode] = {}
        self.latest: dict[tuple[str, str], Picture] = {}  # (partner, kind) -> last picture
        self.plot_counts: Counter[str] = Counter()
        self.cpu_s: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.max_lag_s = 0.0
        self._group_partner = np.array([self.partners.index(g.partner) if g.partner in self.partners else -1
                                        for g in self.groups], dtype=np.int64)
        self._lock = threading.Lock()
        self._stop = False
        self._seek_to: float | None = None
        self._reached = -math.inf  # clock time of the last step run
        self._thread: threading.Thread | None = None
        self._started = False
        self.result: RuntimeResult | None = None
        self.error: BaseException | None = None
        for p in self.partners:
            self.bus.subscribe(subject_for(p, subject_prefix))
        self._bus_base = (sum(self.bus.published.values()), sum(self.bus.delivered.values()))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_scenario(
        cls,
        scenario,
        policy=None,
        *,
        clock: Clock | None = None,
        seed: int | None = None,
        update_period_s: float | dict[str, float] = 1.0,
        registration: bool = True,
        batch_s: float = 1.0,
        simulation=None,
        **kwargs,
    ) -> Runtime:
        """A runtime over a scenario (built-in name, YAML path or Scenario) under ``policy``
        (a Policy, a built-in name or a YAML path; default: the scenario's built-in policy).
        The scenario is simulated (``seed`` replaces its seed) and its plots become a
        :class:`SimulatorSource`; ``sensors`` and ``truth`` come from the simulation."""
        import siap
        from siap.errors import ConfigError
        from siap.pipeline import default_policy_name, tracker_config_for
        from siap.sharing.policy import load_policy

        if not hasattr(scenario, "sensors"):
            scenario = siap.load_scenario(scenario)
        if seed is not None:
            scenario = scenario.model_copy(update={"seed": int(seed)})
        if policy is None:
            policy = default_policy_name(scenario.name)
            if policy is None:
                raise ConfigError(f"scenario {scenario.name}: no built-in policy of that name; pass a policy")
        if not isinstance(policy, Policy):
            policy = load_policy(policy)
        sim = simulation if simulation is not None else siap.simulate(scenario)
        return cls(
            policy,
            [SimulatorSource(sim, batch_s)],
            sensor_ids=[s.id for s in sim.sensors],
            tracker_config=tracker_config_for(scenario),
            clock=clock,
            update_period_s=update_period_s,
            start_s=scenario.start_time_s,
            end_s=scenario.end_time_s,
            registration=registration,
            sensors=sim.sensors,
            truth=sim.truth,
            **kwargs,
        )

    # ------------------------------------------------------------------ state and controls
    @property
    def now_s(self) -> float:
        """The clock's time (before the run: its start)."""
        now = self.clock.now()
        if not math.isfinite(now):
            return self.start_s
        return min(now, self.end_s) if self.end_s is not None else now

    @property
    def speed(self) -> float:
        return self.clock.speed

    @property
    def paused(self) -> bool:
        return self.clock.paused

    def add_sink(self, sink, *, queue_size: int | None = None):
        """Register a sink (``on_picture(picture)``); with ``queue_size`` it runs on its own
        thread behind a bounded queue that drops the oldest picture when full. Returns what was
        registered (the sink, or its :class:`QueuedSink`)."""
        if queue_size is not None:
            sink = QueuedSink(sink, queue_size)
        self.sinks.add(sink)
        return sink

    def pause(self) -> None:
        self.clock.pause()

    def resume(self) -> None:
        self.clock.resume()

    def set_speed(self, speed: float) -> None:
        """Replay speed (x real time); no effect on a virtual clock's pace."""
        self.clock.set_speed(speed)

    def seek(self, time_s: float) -> None:
        """Go to ``time_s``. Forward: every step up to it runs at once (fast-forward), so the
        picture at ``time_s`` is the one a played-through run has. Backward: the run restarts
        from its start (fresh nodes, sources iterated again: deterministic) and fast-forwards;
        this needs restartable sources and the in-process bus (ValueError otherwise)."""
        time_s = float(time_s)
        if not math.isfinite(time_s):
            raise ValueError(f"seek: expected a finite time, got {time_s}")
        time_s = max(time_s, self.start_s)
        if self.end_s is not None:
            time_s = min(time_s, self.end_s)
        if time_s < self._reached and not self._can_restart():
            raise ValueError("seek backward needs restartable sources and the in-process bus")
        with self._lock:
            self._seek_to = time_s
        self.clock.interrupt()

    def pause_partner(self, partner: str) -> None:
        """Stop a hosted partner's node (as if its process stopped): it skips its updates and
        the plots released for it are dropped, until :meth:`resume_partner`."""
        self._node(partner).paused = True

    def resume_partner(self, partner: str) -> None:
        self._node(partner).paused = False

    def picture(self, partner: str, kind: str = "coalition") -> Picture | None:
        """The latest picture of a hosted partner (None before its first update)."""
        return self.latest.get((partner, kind))

    def start(self, until_s: float | None = None) -> None:
        """Run in a background thread (:meth:`stop` ends it; :attr:`result` then holds the
        result, :attr:`error` an exception that ended it)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the runtime is already running")

        def main() -> None:
            try:
                self.run(until_s)
            except BaseException as exc:  # noqa: BLE001 - kept for the caller, logged here
                self.error = exc
                log.exception("runtime stopped on an error")

        self._stop = False
        self._thread = threading.Thread(target=main, name="siap-runtime", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = 30.0) -> RuntimeResult | None:
        """End the run (from another thread, or a sink) and wait for the loop to finish."""
        self._stop = True
        self.clock.interrupt()
        if self._thread is not None and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
        return self.result

    def join(self, timeout_s: float | None = None) -> RuntimeResult | None:
        """Wait for a run started with :meth:`start` to end by itself."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.result

    # ------------------------------------------------------------------ the loop
    def run(self, until_s: float | None = None) -> RuntimeResult:
        """Run (blocking) until ``until_s`` (default: ``end_s``), :meth:`stop`, or forever when
        neither is set; returns the :class:`RuntimeResult`."""
        until = math.inf if until_s is None else float(until_s)
        if self.end_s is not None:
            until = min(until, self.end_s)
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        if not self._started:
            self.clock.start(self.start_s)
            if isinstance(self.clock, RealTimeClock):
                self.start_s = self.clock.now()  # live: the run starts now
            self._restart()
            self._started = True
        if threading.current_thread() is not self._thread:
            self._stop = False  # (start() clears it before its thread runs, so a stop() is not lost)
        try:
            self._loop(until)
        except BaseException:
            # a signal, a lost server or an error: keep the counters of the steps done
            self.result = self._result(time.perf_counter() - wall0, time.thread_time() - cpu0)
            raise
        finally:
            self.sinks.flush(timeout_s=1.0)  # queued sinks: what is waiting, briefly
        cpu = time.thread_time() - cpu0
        self.result = self._result(time.perf_counter() - wall0, cpu)
        return self.result

    def close(self) -> None:
        """Anchor the nodes' audit logs in each other (every node records the others' signed
        heads, see siap.sharing.audit) and close them (a run's end does it too)."""
        heads = {p: n.audit.head() for p, n in self.nodes.items() if n.audit is not None}
        for p, node in self.nodes.items():
            if node.audit is not None:
                for q, head in heads.items():
                    if q != p and head is not None:
                        node.audit.record_peer_head(head, time_s=self._reached if np.isfinite(self._reached) else None)
        for node in self.nodes.values():
            node.close()

    def _restart(self) -> None:
        """Fresh nodes and sources, from the start (the first run and a backward seek)."""
        for node in self.nodes.values():
            node.close()
        if self._started and self._own_bus:
            self.bus = InProcessBus()
            for p in self.partners:
                self.bus.subscribe(subject_for(p, self.subject_prefix))
            self._bus_base = (0, 0)
        self.nodes = {}
        for p in self.partners:
            gids = [i for i, g in enumerate(self.groups) if g.partner == p]
            self.nodes[p] = PartnerNode(
                p, [self.groups[i] for i in gids], self.policy, self.tracker_config, self.fusion_config,
                self.identities[p], self.trust, self.audit_paths.get(p), gids, self.registration,
                self.subject_prefix, self._schedule(p), self.run_id,
            )
        self._iters = [iter(s) for s in self.sources]
        self._heads: list[np.ndarray | None] = [None] * len(self.sources)
        self._done = [False] * len(self.sources)
        self._due = {p: n.schedule.first() for p, n in self.nodes.items()}
        self._reached = -math.inf
        self.latest = {}

    def _can_restart(self) -> bool:
        return self._own_bus and all(is_restartable(s) for s in self.sources)

    def _schedule(self, partner: str) -> UpdateSchedule:
        times = self._times
        if isinstance(times, dict):
            times = times.get(partner)
        if times is not None:
            return UpdateSchedule(self.start_s, times=times)
        period = self._periods
        if isinstance(period, dict):
            period = period.get(partner, 1.0)
        return UpdateSchedule(self.start_s, period_s=float(period))

    def _node(self, partner: str) -> PartnerNode:
        if partner not in self.nodes:
            raise KeyError(f"partner {partner!r} is not hosted here (hosted: {', '.join(self.partners)})")
        return self.nodes[partner]

    def _loop(self, until: float) -> None:
        n_progress = 0
        forward_to = -math.inf  # a seek's target: steps up to it run at once, paused or not
        while not self._stop:
            with self._lock:
                target, self._seek_to = self._seek_to, None
            if target is not None:
                if target < self._reached:
                    log.info("seek back to %.3f: restarting the run and fast-forwarding", target)
                    self._restart()
                    self.sinks.seek(target)
                self.clock.seek(target)  # every step up to target is now due: fast-forward
                forward_to = target
            t = min(self._due.values(), default=math.inf)
            if t > until or not math.isfinite(t):
                if self.hold_at_end and self.end_s is not None and until >= self.end_s:
                    self.clock.pause()  # the end: hold the last pictures until a seek or a stop
                    self.clock.wait_until(math.inf)
                    continue
                break
            if t <= forward_to:
                pass  # fast-forward after a seek (also while paused: the picture at the target shows)
            elif not self.clock.wait_until(t):
                continue  # interrupted: a seek or a stop
            elif self.clock.realtime:
                self.max_lag_s = max(self.max_lag_s, self.clock.now() - t)
            self._step(t)
            n_progress += 1
            if self.progress is not None and n_progress % 10 == 0 and self.end_s is not None:
                span = max(self.end_s - self.start_s, 1e-9)
                self.progress("coalition", min(max((t - self.start_s) / span, 0.0), 1.0))
        if self.progress is not None:
            self.progress("coalition", 1.0)

    def _step(self, t: float) -> None:
        tick = time.thread_time
        c0 = tick()
        self._release(t)
        c1 = tick()
        due = [p for p in self.partners if self._due[p] <= t]
        live = [p for p in due if not self.nodes[p].paused]
        others = {p: [r for r in self.all_partners if r != p] for p in live}
        cpu_track = cpu_publish = 0.0
        for p in live:
            node = self.nodes[p]
            a = tick()
            local = node.track(t)
            b = tick()
            node.publish(local, t, self.bus, others[p])
            cpu_track += b - a
            cpu_publish += tick() - b
        cpu_fuse = cpu_sinks = 0.0
        for p in live:
            a = tick()
            coalition, own = self.nodes[p].fuse(self.bus, t, own=self.own_pictures)
            b = tick()
            kinds = (("coalition", coalition),) if own is None else (("coalition", coalition), ("own", own))
            for kind, tracks in kinds:
                picture = Picture(p, t, tracks, kind)
                self.latest[(p, kind)] = picture
                self.sinks.emit(picture)
            cpu_fuse += b - a
            cpu_sinks += tick() - b
        for p in due:
            self._due[p] = self.nodes[p].schedule.next_after(t)
        self._reached = t
        for stage, dt in zip(STAGES, (c1 - c0, cpu_track, cpu_publish, cpu_fuse, cpu_sinks), strict=True):
            self.cpu_s[stage] += dt

    def _release(self, t: float) -> None:
        """Hand every source plot with time <= t to the node of its sensor's partner."""
        for i, it in enumerate(self._iters):
            while True:
                head = self._heads[i]
                if head is None:
                    if self._done[i]:
                        break
                    try:
                        head = next(it)
                    except StopIteration:
                        self._done[i] = True
                        break
                    head = np.asarray(head)
                    if head.dtype != records.PLOT_DTYPE:
                        self.plot_counts["dropped_bad_batch"] += int(head.size)
                        log.warning("source %d: dropped a batch of dtype %s (expected PLOT_DTYPE)", i, head.dtype)
                        continue
                    head = head.reshape(-1)
                    if len(head) == 0:
                        break  # nothing yet: ask again at the next step
                times = head["time_s"]
                if times.max() <= t:
                    self._route(head)
                    self._heads[i] = None
                    continue
                now = times <= t
                if now.any():
                    self._route(head[now])
                    head = head[~now]
                self._heads[i] = head
                break

    def _route(self, plots: np.ndarray) -> None:
        self.plot_counts["released"] += len(plots)
        labelled = label_plots(plots, self.policy)
        gi = group_index(labelled, self.groups)
        unknown = gi < 0
        if unknown.any():
            n = int(unknown.sum())
            if self.plot_counts["dropped_unknown_sensor"] == 0:
                log.warning("dropping plots of sensors not in the run: %s",
                            sorted(set(labelled["sensor_id"][unknown].tolist()))[:10])
            self.plot_counts["dropped_unknown_sensor"] += n
        owner = np.where(unknown, -1, self._group_partner[np.maximum(gi, 0)])
        for k, p in enumerate(self.partners):
            mine = owner == k
            if mine.any():
                node = self.nodes[p]
                before = node.plots_dropped_paused
                node.offer(labelled[mine], gi[mine])
                self.plot_counts["dropped_paused"] += node.plots_dropped_paused - before

    def _result(self, wall_s: float, cpu_s: float) -> RuntimeResult:
        nodes = self.nodes
        published = sum(self.bus.published.values()) - self._bus_base[0]
        delivered = sum(self.bus.delivered.values()) - self._bus_base[1]
        return RuntimeResult(
            partners=list(self.partners),
            start_s=self.start_s,
            stop_s=self._reached,
            updates={p: n.updates for p, n in nodes.items()},
            plots=dict(self.plot_counts),
            messages={"published": int(published), "delivered": int(delivered),
                      "accepted": int(sum(n.verifier.counts.get("accepted", 0) for n in nodes.values()))},
            rejected={
                p: {
                    **{k: int(v) for k, v in n.verifier.counts.items() if k != "accepted"},
                    **{f"{k}_rows": int(v) for k, v in n.verifier.dropped_rows.items()},
                }
                for p, n in nodes.items()
            },
            sink_errors=dict(self.sinks.errors),
            tracker_stats={f"{g.partner}#{g.index}": dict(tr.stats) for n in nodes.values()
                           for g, tr in zip(n.groups, n.trackers, strict=True)},
            biases={f"{g.partner}#{g.index}": estimates_table(reg) for n in nodes.values() if n.registrations is not None
                    for g, reg in zip(n.groups, n.registrations, strict=True)},
            wall_s=wall_s,
            cpu_s={**{k: round(v, 6) for k, v in self.cpu_s.items()}, "total": cpu_s},
            max_lag_s=self.max_lag_s,
            audit_paths=dict(self.audit_paths),
        )
