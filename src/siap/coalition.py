"""Coalition runs: partner nodes that track their own sensors, share signed local tracks under a
releasability policy, and fuse what they receive into their own picture.

How a run works (federated mode, the coalition default; see docs/coalition.md):

1. Each partner's sensors are split into *source groups* by audience: the set of partners the
   sensor's label releases to. Each group has its own tracker, so a track's label follows only
   from the group's sensors and never changes with what other sensors saw. This is what makes
   releasability non-interfering: what partner P receives is computed from data releasable to
   P alone.
2. Every evaluation step, each group's tracker processes its plots and its snapshot becomes the
   partner's local tracks (``track_id = group << 32 | local id``, ``label`` = the group label).
3. Each node releases to every other partner the rows releasable to it (audited), seals them in
   Ed25519-signed envelopes and publishes them on that partner's subject of the bus.
4. Each node verifies what it receives (signature, replay, label, ownership; rejects are counted
   and audited) and fuses its own local tracks with the accepted ones in its *own* fuser
   (:class:`siap.fusion.TrackFuser`); that is the partner's coalition picture. A second fuser over
   its own local tracks only gives the picture it would have alone.

Centralised mode (for comparison): each partner runs one tracker over all the raw plots it may
receive (releasable and ``share_plots: true``, plus its own).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from siap import records
from siap.errors import ConfigError
from siap.fusion import FusionConfig, TrackFuser
from siap.sharing import audit as audit_mod
from siap.sharing.labels import combine
from siap.sharing.policy import Policy
from siap.sharing.release import release, release_mask
from siap.sharing.signing import NodeIdentity, RejectedMessage, Signer, TrustStore, Verifier
from siap.tracking import Tracker, TrackerConfig, track_with_stats
from siap.tracking.registration import SensorRegistration, estimates_table
from siap.transport import InProcessBus, MessageBus

log = logging.getLogger(__name__)

__all__ = [
    "SourceGroup",
    "PartnerNode",
    "CoalitionResult",
    "source_groups",
    "run_coalition",
    "label_plots",
    "GROUP_SHIFT",
]

GROUP_SHIFT = 32  # local track id = group index << GROUP_SHIFT | tracker track id
DEFAULT_SUBJECT_PREFIX = "siap.tracks"  # partner P receives on "siap.tracks.P"
ProgressFn = Callable[[str, float], None]


def _combine_text(labels: list[str]) -> str:
    return str(combine(labels))


def _audience_rank(policy: Policy) -> Callable[[str], int]:
    """Founder rank for the fusers: minus the number of partners a label is releasable to, so
    numbers founded on widely releasable tracks survive merges (higher commonality)."""
    cache: dict[str, int] = {}

    def rank(label: str) -> int:
        if label not in cache:
            try:
                cache[label] = -sum(policy.releasable(label, p) for p in policy.partners)
            except ValueError:
                cache[label] = 0
        return cache[label]

    return rank


@dataclass
class SourceGroup:
    """Sensors of one partner whose data share an audience, tracked together."""

    partner: str
    index: int
    sensor_ids: tuple[str, ...]
    label: str  # canonical label text carried by every track of this group
    audience: frozenset[str]


def source_groups(policy: Policy, sensor_ids: list[str]) -> list[SourceGroup]:
    """Split the scenario's sensors into source groups (per owner, by audience).

    The group label is the join of the owner's track label and its sensors' labels. Raises
    ConfigError if a scenario sensor is not declared in the policy.
    """
    by_key: dict[tuple[str, frozenset[str]], list[str]] = {}
    for sid in sorted(sensor_ids):
        owner = policy.owner_or_none(sid)
        if owner is None:
            raise ConfigError(
                f"policy {policy.name}: sensors: scenario sensor {sid!r} is not declared under any partner"
            )
        label = policy.sensor_label(sid)
        audience = frozenset(p for p in policy.partners if policy.releasable(label, p))
        by_key.setdefault((owner, audience), []).append(sid)
    groups: list[SourceGroup] = []
    per_partner: Counter[str] = Counter()
    for (owner, _audience), sids in sorted(by_key.items(), key=lambda kv: (kv[0][0], sorted(kv[0][1]), kv[1])):
        label = combine([policy.track_label(owner), *(policy.sensor_label(s) for s in sids)])
        text = str(label)
        real_audience = frozenset(p for p in policy.partners if policy.releasable(text, p))
        groups.append(SourceGroup(owner, per_partner[owner], tuple(sids), text, real_audience))
        per_partner[owner] += 1
    return groups


def label_plots(plots: np.ndarray, policy: Policy) -> np.ndarray:
    """A copy of ``plots`` with each row labelled by its sensor's default label."""
    out = plots.copy()
    codes, uniq = pd.factorize(out["sensor_id"])
    labels = np.array([str(policy.sensor_label(s)) for s in uniq.tolist()], dtype=out.dtype["label"])
    out["label"] = labels[codes] if len(uniq) else out["label"]
    return out


class PartnerNode:
    """One partner's node: its source-group trackers, signer, verifier and fusers."""

    def __init__(
        self,
        partner: str,
        groups: list[SourceGroup],
        policy: Policy,
        tracker_config: TrackerConfig,
        fusion_config: FusionConfig,
        identity: NodeIdentity,
        trust_store: TrustStore,
        audit_path: Path | None,
        group_ids: list[int],
        registration: bool = False,
        subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
        run_id: str = "run",
    ) -> None:
        self.partner = partner
        self.subject_prefix = subject_prefix
        self.groups = groups
        self.group_ids = group_ids
        self.policy = policy
        self.trackers = [Tracker(tracker_config) for _ in groups]
        # A group's registration may use as references the partner's sensors whose audience
        # includes the group's (wider-audience data flowing into a narrower group cannot
        # change what a partner outside the narrower audience sees).
        self.reference_ids = [
            [gid for gid, other in zip(group_ids, groups, strict=True) if other.audience >= g.audience]
            for g in groups
        ]
        self.registrations = [SensorRegistration() for _ in groups] if registration else None
        self.identity = identity
        # every release is sealed to its recipient's pinned key; what arrives must be sealed to ours
        self.signer = Signer(identity, first_seq=1, encrypt_with=trust_store)
        self.audit = audit_mod.AuditLog(audit_path, identity=identity, run_id=run_id) if audit_path else None
        self.verifier = Verifier(
            trust_store, policy, audit=self.audit, recipient=partner, decryption_key=identity.encryption_key
        )
        rank = _audience_rank(policy)
        self.coalition_fuser = TrackFuser(fusion_config, combine_labels=_combine_text, founder_rank=rank)
        self.own_fuser = TrackFuser(fusion_config, combine_labels=_combine_text, founder_rank=rank)

    def local_tracks(self, plots: np.ndarray, group_of_plot: np.ndarray, time_s: float) -> np.ndarray:
        """Process the node's new plots (``group_of_plot``: global group index of each) and
        return its local tracks at ``time_s``."""
        parts = []
        for i, (group, tracker) in enumerate(zip(self.groups, self.trackers, strict=True)):
            mine = plots[group_of_plot == self.group_ids[i]]
            hold_s = 0.0
            if self.registrations is not None:
                reg = self.registrations[i]
                reg.observe(plots[np.isin(group_of_plot, self.reference_ids[i])])
                mine = reg.correct(mine)
                hold_s = reg.max_time_correction_s
            if len(mine):
                tracker.process(mine)
            tracker.advance(time_s - hold_s)  # the node's plots arrive in time order
            snap = tracker.snapshot(time_s)
            if len(snap):
                snap = snap.copy()
                snap["track_id"] = (np.int64(group.index) << GROUP_SHIFT) | snap["track_id"]
                snap["partner"] = self.partner
                snap["label"] = group.label
                parts.append(snap)
        return np.concatenate(parts) if parts else records.empty_tracks(0)

    def publish(self, local: np.ndarray, time_s: float, bus: MessageBus, recipients: list[str]) -> None:
        """Release to each recipient what it may see (audited), sign it and publish it."""
        for recipient in recipients:
            rows = release(local, recipient, self.policy, audit=self.audit, time_s=time_s)
            for envelope in self.signer.sign_batch(rows, "tracks", time_s=time_s, recipient=recipient):
                bus.publish(subject_for(recipient, self.subject_prefix), envelope.to_bytes())

    def receive(self, bus: MessageBus, time_s: float) -> np.ndarray:
        """Verify every message waiting for this node; the accepted track rows."""
        accepted = []
        for message in bus.drain(subject_for(self.partner, self.subject_prefix)):
            try:
                accepted.append(self.verifier.verify(message, now_s=time_s))
            except RejectedMessage:
                continue  # counted, logged and audited by the verifier; the stream goes on
        return np.concatenate(accepted) if accepted else records.empty_tracks(0)

    def close(self) -> None:
        if self.audit is not None:
            self.audit.close()


def subject_for(partner: str, prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """The subject on which ``partner`` receives tracks (``siap.tracks.JPN``)."""
    return f"{prefix}.{partner}"


@dataclass
class CoalitionResult:
    """The pictures of one coalition run, per partner, at the evaluation times."""

    times: np.ndarray
    partners: list[str]
    groups: list[SourceGroup]
    coalition: dict[str, np.ndarray]  # partner -> its fused coalition picture (TRACK_DTYPE)
    own: dict[str, np.ndarray]  # partner -> picture from its own sensors alone
    centralised: dict[str, np.ndarray] = field(default_factory=dict)
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)  # partner -> reason -> count
    messages: dict[str, int] = field(default_factory=dict)
    tracker_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    biases: dict[str, dict[str, dict[str, float | int | bool]]] = field(default_factory=dict)
    audit_paths: dict[str, Path] = field(default_factory=dict)
    run_id: str = ""  # binds the audit logs to this run (see siap.sharing.audit)
    trust: TrustStore | None = None  # public keys of this run's nodes, to verify the audit logs
    timings_s: dict[str, float] = field(default_factory=dict)


def run_coalition(
    plots: np.ndarray,
    policy: Policy,
    times: np.ndarray,
    *,
    origin: tuple[float, float, float],
    sensor_ids: list[str] | None = None,
    centralised: bool = True,
    tracker_config: TrackerConfig | None = None,
    fusion_config: FusionConfig | None = None,
    audit_dir: str | Path | None = None,
    registration: bool = False,
    bus: MessageBus | None = None,
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
    tamper: Callable[[str, bytes], bytes | list[tuple[str, bytes]] | None] | None = None,
    progress: ProgressFn | None = None,
) -> CoalitionResult:
    """Run the coalition over ``plots`` and return every partner's picture at ``times``.

    ``origin`` (lat_deg, lon_deg, alt_m) is the trackers' frame. ``sensor_ids`` defaults to the
    sensors present in the plots. ``tamper`` lets tests act as an attacker on the bus (alter,
    drop, replay or redirect messages; see :func:`_apply_tamper`).
    """
    t_start = time.perf_counter()
    cfg = tracker_config or TrackerConfig(
        origin_lat_deg=origin[0], origin_lon_deg=origin[1], origin_alt_m=origin[2]
    )
    fcfg = fusion_config or FusionConfig(source_id_bits=GROUP_SHIFT)
    sids = sorted(set(sensor_ids) if sensor_ids is not None else set(np.unique(plots["sensor_id"]).tolist()))
    groups = source_groups(policy, sids)
    partners = list(policy.partners)
    plots = label_plots(plots[np.argsort(plots["time_s"], kind="stable")], policy)
    group_of_plot = _group_index(plots, groups)

    run_id = uuid.uuid4().hex[:16]
    identities = {p: NodeIdentity.generate(f"{p}-node", p) for p in partners}
    trust = TrustStore()
    for identity in identities.values():
        trust.add(identity)
    audit_paths: dict[str, Path] = {}
    if audit_dir is not None:
        Path(audit_dir).mkdir(parents=True, exist_ok=True)
        audit_paths = {p: Path(audit_dir) / f"audit-{p}.jsonl" for p in partners}
        for path in audit_paths.values():  # a run starts new chains, signed by this run's keys
            path.unlink(missing_ok=True)
            Path(str(path) + ".head").unlink(missing_ok=True)
        trust.save(Path(audit_dir) / "trust.yaml")
    nodes = {
        p: PartnerNode(
            p,
            [g for g in groups if g.partner == p],
            policy,
            cfg,
            fcfg,
            identities[p],
            trust,
            audit_paths.get(p),
            [i for i, g in enumerate(groups) if g.partner == p],
            registration,
            subject_prefix,
            run_id,
        )
        for p in partners
    }
    bus = bus if bus is not None else InProcessBus()
    for p in partners:
        bus.subscribe(subject_for(p, subject_prefix))
    published_before = sum(bus.published.values())
    delivered_before = sum(bus.delivered.values())

    cuts = np.searchsorted(plots["time_s"], times, side="right")
    coalition = {p: [] for p in partners}
    own = {p: [] for p in partners}
    start = 0
    for step, (t, stop) in enumerate(zip(times, cuts, strict=True)):
        t = float(t)
        window = slice(start, stop)
        start = stop
        window_plots, window_groups = plots[window], group_of_plot[window]
        locals_ = {p: node.local_tracks(window_plots, window_groups, t) for p, node in nodes.items()}
        for p, node in nodes.items():
            node.publish(locals_[p], t, bus, [r for r in partners if r != p])
        if tamper is not None:
            _apply_tamper(bus, [subject_for(p, subject_prefix) for p in partners], tamper)
        for p, node in nodes.items():
            received = node.receive(bus, t)
            mine = locals_[p]
            both = np.concatenate([mine, received]) if len(received) else mine
            coalition[p].append(node.coalition_fuser.update(both, t))
            own[p].append(node.own_fuser.update(mine, t))
        if progress is not None and step % 10 == 0:
            progress("coalition", step / max(len(times), 1))
    _exchange_audit_heads(list(nodes.values()), float(times[-1]) if len(times) else 0.0)
    for node in nodes.values():
        node.close()
    if progress is not None:
        progress("coalition", 1.0)
    timings = {"federated": time.perf_counter() - t_start}

    result = CoalitionResult(
        times=np.asarray(times),
        partners=partners,
        groups=groups,
        coalition={p: _cat(v) for p, v in coalition.items()},
        own={p: _cat(v) for p, v in own.items()},
        rejected={
            p: {
                **{k: int(v) for k, v in n.verifier.counts.items() if k != "accepted"},
                **{f"{k}_rows": int(v) for k, v in n.verifier.dropped_rows.items()},
            }
            for p, n in nodes.items()
        },
        messages={"published": int(sum(bus.published.values()) - published_before),
                  "delivered": int(sum(bus.delivered.values()) - delivered_before),
                  "accepted": int(sum(n.verifier.counts.get("accepted", 0) for n in nodes.values()))},
        tracker_stats={f"{g.partner}#{g.index}": dict(tr.stats) for n in nodes.values() for g, tr in zip(n.groups, n.trackers, strict=True)},
        biases={
            f"{g.partner}#{g.index}": estimates_table(reg)
            for n in nodes.values() if n.registrations is not None
            for g, reg in zip(n.groups, n.registrations, strict=True)
        },
        audit_paths=audit_paths,
        run_id=run_id,
        trust=trust,
        timings_s=timings,
    )
    if centralised:
        t0 = time.perf_counter()
        for i, p in enumerate(partners):
            mine = plots[release_mask(plots, p, policy)]
            result.centralised[p] = _centralised_picture(mine, cfg, times, p, registration)
            if progress is not None:
                progress("centralised", (i + 1) / len(partners))
        result.timings_s["centralised"] = time.perf_counter() - t0
    return result


def _exchange_audit_heads(nodes: list[PartnerNode], time_s: float) -> None:
    """Anchor every node's audit log outside itself: each node records the others' signed heads
    in its own log (``peer_head`` entries), so a rewritten or truncated chain contradicts what
    the other partners hold (see siap.sharing.audit)."""
    heads = {n.partner: n.audit.head() for n in nodes if n.audit is not None}
    for n in nodes:
        if n.audit is None:
            continue
        for partner, head in heads.items():
            if partner != n.partner and head is not None:
                n.audit.record_peer_head(head, time_s=time_s)


def _apply_tamper(bus: MessageBus, subjects: list[str], tamper) -> None:
    """Let an attacker rewrite what is in flight: ``tamper(subject, message)`` returns the
    bytes to deliver on that subject, None to drop it, or a list of (subject, bytes) to deliver
    instead (redirection, duplication)."""
    in_flight = []
    for subject in subjects:
        messages = bus.drain(subject)
        bus.delivered[subject] -= len(messages)
        in_flight += [(subject, m) for m in messages]
    for subject, m in in_flight:
        changed = tamper(subject, m)
        if changed is None:
            continue
        for target, data in [(subject, changed)] if isinstance(changed, bytes) else changed:
            bus.requeue(target, data)


def _centralised_picture(
    plots: np.ndarray, cfg: TrackerConfig, times: np.ndarray, partner: str, registration: bool
) -> np.ndarray:
    reg = SensorRegistration() if registration else None
    tracks, _ = track_with_stats(plots, cfg, times, registration=reg)
    tracks["partner"] = partner
    return tracks


def _group_index(plots: np.ndarray, groups: list[SourceGroup]) -> np.ndarray:
    """Index (into ``groups``) of the group of each plot's sensor; -1 for unknown sensors."""
    lookup = {sid: i for i, g in enumerate(groups) for sid in g.sensor_ids}
    codes, uniq = pd.factorize(plots["sensor_id"])
    table = np.array([lookup.get(s, -1) for s in uniq.tolist()], dtype=np.int64)
    return table[codes] if len(uniq) else np.zeros(0, np.int64)


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    parts = [p for p in parts if len(p)]
    return np.concatenate(parts) if parts else records.empty_tracks(0)
