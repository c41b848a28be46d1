"""A partner node: one partner's source-group trackers, signer, verifier and fusers.

On each of its updates (its own period, see :class:`UpdateSchedule`) the node

1. **tracks**: feeds the plots released since its last update to its source-group trackers
   and snapshots them at the update time: its *local tracks* (``track_id = group << 32 | local
   id``, ``label`` = the group label);
2. **publishes**: releases to every other partner the rows releasable to it (audited), seals
   them in Ed25519-signed envelopes and publishes them on that partner's subject of the bus;
3. **fuses**: verifies whatever has arrived on its own subject by then (signature, replay,
   label, ownership; rejects are counted and audited) and fuses its local tracks with the
   accepted ones in its own :class:`~siap.fusion.TrackFuser`, which predicts every
   contribution from its own time of validity to the update time: the partner's *coalition
   picture*. A second fuser over its local tracks alone gives its *own* picture.

Nothing here waits for another partner: what has not arrived is fused at a later update, and a
partner that falls silent has its tracks age out of the others' fusers (``max_age_s``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from siap import records
from siap.fusion import FusionConfig, TrackFuser
from siap.sharing import audit as audit_mod
from siap.sharing.policy import Policy
from siap.sharing.release import release
from siap.sharing.signing import NodeIdentity, RejectedMessage, Signer, TrustStore, Verifier
from siap.tracking import Tracker, TrackerConfig
from siap.tracking.registration import SensorRegistration
from siap.transport import MessageBus

from .groups import GROUP_SHIFT, SourceGroup, audience_rank, combine_label_text

__all__ = ["DEFAULT_SUBJECT_PREFIX", "PartnerNode", "UpdateSchedule", "subject_for"]

DEFAULT_SUBJECT_PREFIX = "siap.tracks"  # partner P receives on "siap.tracks.P"


def subject_for(partner: str, prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """The subject on which ``partner`` receives tracks (``siap.tracks.JPN``)."""
    return f"{prefix}.{partner}"


class UpdateSchedule:
    """When a partner updates: every ``period_s`` seconds after ``start_s`` (the first update
    one period after the start), or at explicit ``times`` (sorted, e.g. evaluation times)."""

    def __init__(self, start_s: float, period_s: float | None = None, times: np.ndarray | None = None) -> None:
        if (period_s is None) == (times is None):
            raise ValueError("UpdateSchedule: give exactly one of period_s and times")
        if period_s is not None and not (math.isfinite(period_s) and period_s > 0):
            raise ValueError(f"update period: expected a finite number of seconds > 0, got {period_s}")
        self.start_s = float(start_s)
        self.period_s = None if period_s is None else float(period_s)
        self.times = None if times is None else np.sort(np.asarray(times, dtype=np.float64))

    def next_after(self, time_s: float) -> float:
        """The first update time strictly after ``time_s`` (inf when there is none)."""
        if self.times is not None:
            i = int(np.searchsorted(self.times, time_s, side="right"))
            return float(self.times[i]) if i < len(self.times) else math.inf
        k = max(math.floor((time_s - self.start_s) / self.period_s) + 1, 1)
        t = self.start_s + k * self.period_s
        while t <= time_s:  # rounding
            k += 1
            t = self.start_s + k * self.period_s
        return t

    def first(self) -> float:
        """The first update at or after the start."""
        if self.times is not None:
            i = int(np.searchsorted(self.times, self.start_s, side="left"))
            return float(self.times[i]) if i < len(self.times) else math.inf
        return self.start_s + self.period_s

    def __repr__(self) -> str:
        if self.times is not None:
            return f"UpdateSchedule({len(self.times)} times)"
        return f"UpdateSchedule(every {self.period_s:g} s)"


class PartnerNode:
    """One partner's node: its source-group trackers, signer, verifier and fusers.

    ``group_ids`` are the global indices (into the run's list of groups) of ``groups``; plots
    are handed to :meth:`offer` with their global group index.
    """

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
        schedule: UpdateSchedule | None = None,
        run_id: str = "run",
    ) -> None:
        self.partner = partner
        self.subject_prefix = subject_prefix
        self.groups = groups
        self.group_ids = group_ids
        self.policy = policy
        self.schedule = schedule
        # each group's tracker writes the partner and the group's label into its tracks itself
        self.trackers = [
            Tracker(tracker_config.model_copy(update={"partner": partner, "label": g.label}))
            for g in groups
        ]
        # A group's registration may use as references the partner's sensors whose audience
        # includes the group's (wider-audience data flowing into a narrower group cannot
        # change what a partner outside the narrower audience sees).
        self.reference_ids = [
            [gid for gid, other in zip(group_ids, groups, strict=True) if other.audience >= g.audience]
            for g in groups
        ]
        self.registrations = [SensorRegistration() for _ in groups] if registration else None
        # Track-to-track registration: a group's registration may also use as references the
        # received tracks whose label is releasable to every partner of the group's audience
        # (what the group's tracks tell a partner then rests on data that partner may see).
        self._reference_ok: list[dict[str, bool]] = [{} for _ in groups]
        self.identity = identity
        # every release is sealed to its recipient's pinned key; what arrives must be sealed to ours
        self.signer = Signer(identity, first_seq=1, encrypt_with=trust_store)
        self.audit = audit_mod.AuditLog(audit_path, identity=identity, run_id=run_id) if audit_path else None
        self.verifier = Verifier(
            trust_store, policy, audit=self.audit, recipient=partner, decryption_key=identity.encryption_key
        )
        rank = audience_rank(policy)
        self.coalition_fuser = TrackFuser(fusion_config, combine_labels=combine_label_text, founder_rank=rank)
        self.own_fuser = TrackFuser(fusion_config, combine_labels=combine_label_text, founder_rank=rank)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.local = records.empty_tracks(0)  # local tracks of the last update
        self.last_update_s = -math.inf
        self.paused = False
        self.updates = 0
        self.plots_in = 0
        self.plots_dropped_paused = 0

    # -- plots ---------------------------------------------------------------------------
    def offer(self, plots: np.ndarray, group_of_plot: np.ndarray) -> None:
        """Plots released for this node (its own sensors'), with their global group index.
        A paused node is not listening: they are dropped and counted."""
        if self.paused:
            self.plots_dropped_paused += len(plots)
            return
        self.plots_in += len(plots)
        self._pending.append((plots, group_of_plot))

    def _take_pending(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._pending:
            return records.empty_plots(0), np.zeros(0, np.int64)
        if len(self._pending) == 1:
            plots, groups = self._pending[0]
        else:
            plots = np.concatenate([p for p, _ in self._pending])
            groups = np.concatenate([g for _, g in self._pending])
            order = np.argsort(plots["time_s"], kind="stable")  # sources interleave in time
            plots, groups = plots[order], groups[order]
        self._pending = []
        return plots, groups

    # -- one update: track, publish, fuse --------------------------------------------------
    def track(self, time_s: float) -> np.ndarray:
        """Process the plots received since the last update; the local tracks at ``time_s``."""
        plots, group_of_plot = self._take_pending()
        self.local = self.local_tracks(plots, group_of_plot, time_s)
        self.last_update_s = time_s
        self.updates += 1
        return self.local

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

    def fuse(self, bus: MessageBus, time_s: float, own: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """(coalition picture, own picture) at ``time_s``: the local tracks of the last update
        fused with whatever has been received by now, and the local tracks alone (``None``
        unless ``own``: the own fuser then does no work)."""
        received = self.receive(bus, time_s)
        self.observe_reference_tracks(received)
        both = np.concatenate([self.local, received]) if len(received) else self.local
        coalition = self.coalition_fuser.update(both, time_s)
        return coalition, (self.own_fuser.update(self.local, time_s) if own else None)

    def observe_reference_tracks(self, received: np.ndarray) -> None:
        """Hand the received tracks to each group's registration as references
        (:meth:`SensorRegistration.observe_tracks`), keeping only rows whose label is
        releasable to the group's whole audience (non-interference, docs/registration.md)."""
        if self.registrations is None or len(received) == 0:
            return
        labels = received["label"]
        for i, (group, reg) in enumerate(zip(self.groups, self.registrations, strict=True)):
            ok_of = self._reference_ok[i]
            uniq = np.unique(labels)
            for lab in uniq.tolist():
                if lab not in ok_of:
                    try:
                        ok_of[lab] = all(self.policy.releasable(lab, q) for q in group.audience)
                    except ValueError:
                        ok_of[lab] = False
            ok = np.array([ok_of[lab] for lab in uniq.tolist()], dtype=bool)
            mask = ok[np.searchsorted(uniq, labels)]
            if mask.any():
                reg.observe_tracks(received[mask])

    def close(self) -> None:
        if self.audit is not None:
            self.audit.close()
            self.audit = None

