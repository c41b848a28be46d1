"""Addressed envelopes: a verifier knows who it is, refuses what is addressed to another partner
or not releasable to it, and its replay protection (and the signer's numbering) survive a
restart."""

import dataclasses
import json

import numpy as np
import pytest
from sharing_support import sane_tracks

from siap.errors import ConfigError
from siap.sharing.policy import load_policy
from siap.sharing.signing import (
    NodeIdentity,
    RejectedMessage,
    SignedEnvelope,
    Signer,
    TrustStore,
    Verifier,
)

POLICY = load_policy("pacific")
RESTRICTED = "SIAP//CONFIDENTIAL//REL TO JPN, USA"
SHARED = "SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA"
JPN = NodeIdentity.generate("JPN-node", "JPN")
TRUST = TrustStore([JPN])


def _tracks(label: str, sensor: str, t: float = 100.0) -> np.ndarray:
    return sane_tracks(2, t, "JPN", sensor, label, first_id=1)


def _reason(v: Verifier, data, now: float) -> str:
    with pytest.raises(RejectedMessage) as err:
        v.verify(data, now_s=now)
    return err.value.reason.value


def test_recipient_refuses_label_not_releasable_to_it_and_keeps_going():
    signer = Signer(JPN, first_seq=1)
    at_aus = Verifier(TRUST, POLICY, recipient="AUS")
    # a buggy sender addresses JPN/USA-only data to AUS: AUS refuses it although it is addressed to it
    env = signer.sign_batch(_tracks(RESTRICTED, "JPN-GR-GOTO"), "tracks", time_s=100.0, recipient="AUS")[0]
    assert _reason(at_aus, env.to_bytes(), 100.0) == "not_releasable"
    assert at_aus.counts["not_releasable"] == 1
    ok = signer.sign_batch(_tracks(SHARED, "JPN-GR-NOTO", 101.0), "tracks", time_s=101.0, recipient="AUS")[0]
    assert len(at_aus.verify(ok.to_bytes(), now_s=101.0)) == 2  # nothing else lost at AUS


def test_an_envelope_redirected_to_another_partner_is_misrouted():
    signer = Signer(JPN, first_seq=1)
    at_aus, at_usa = Verifier(TRUST, POLICY, recipient="AUS"), Verifier(TRUST, POLICY, recipient="USA")
    for_usa = signer.sign_batch(_tracks(SHARED, "JPN-GR-NOTO"), "tracks", time_s=100.0, recipient="USA")[0].to_bytes()
    # the label is releasable to AUS too, but the message was not addressed to AUS
    assert _reason(at_aus, for_usa, 100.0) == "misrouted"
    assert at_aus.counts == {"misrouted": 1}
    assert len(at_usa.verify(for_usa, 100.0)) == 2
    # rewriting the address breaks the signature
    forged = dataclasses.replace(SignedEnvelope.from_bytes(for_usa), recipient="AUS").to_bytes()
    assert _reason(at_aus, forged, 100.0) == "altered"


def test_a_verifier_must_know_who_it_is():
    with pytest.raises(TypeError):
        Verifier(TRUST, POLICY)  # no fail-open default
    with pytest.raises(KeyError):
        Verifier(TrustStore(), POLICY, recipient="FRA")
    with pytest.raises(ValueError):
        Verifier(TRUST, POLICY, recipient="USA", max_age_s=float("nan"))


def test_replay_after_a_receiver_restart_is_rejected(tmp_path):
    state = tmp_path / "usa-verifier.json"
    signer = Signer(JPN, first_seq=1)
    first = signer.sign_batch(_tracks(SHARED, "JPN-GR-NOTO"), "tracks", time_s=100.0, recipient="USA")[0].to_bytes()
    v = Verifier(TRUST, POLICY, recipient="USA", state_path=state)
    assert len(v.verify(first, 100.0)) == 2
    restarted = Verifier(TRUST, POLICY, recipient="USA", state_path=state)
    assert _reason(restarted, first, 101.0) == "replayed"  # inside the time window, after a restart
    later = signer.sign_batch(_tracks(SHARED, "JPN-GR-NOTO", 102.0), "tracks", time_s=102.0, recipient="USA")[0]
    assert len(restarted.verify(later.to_bytes(), 102.0)) == 2
    # the same state file cannot be used by another partner's verifier
    with pytest.raises(ConfigError, match="recipient"):
        Verifier(TRUST, POLICY, recipient="AUS", state_path=state)
    state.write_text("{not json")
    with pytest.raises(ConfigError, match="usa-verifier.json"):
        Verifier(TRUST, POLICY, recipient="USA", state_path=state)


def test_a_restarted_sender_is_not_taken_for_a_replay(tmp_path):
    state = tmp_path / "jpn-signer.json"
    receiver = Verifier(TRUST, POLICY, recipient="USA")
    signer = Signer(JPN, first_seq=1, state_path=state)
    for k in range(3):
        env = signer.sign_batch(_tracks(SHARED, "JPN-GR-NOTO", 100.0 + k), "tracks", time_s=100.0 + k, recipient="USA")[0]
        receiver.verify(env, 100.0 + k)
    # the node restarts with the same reproducible first_seq: the persisted mark wins
    again = Signer(JPN, first_seq=1, state_path=state)
    env = again.sign_batch(_tracks(SHARED, "JPN-GR-NOTO", 104.0), "tracks", time_s=104.0, recipient="USA")[0]
    assert env.seq > 3
    assert len(receiver.verify(env, 104.0)) == 2
    # without the state file it would have been refused
    naive = Signer(JPN, first_seq=1).sign_batch(_tracks(SHARED, "JPN-GR-NOTO", 105.0), "tracks", time_s=105.0, recipient="USA")[0]
    assert _reason(receiver, naive, 105.0) == "replayed"
    doc = json.loads(state.read_text())
    assert doc["node"] == "JPN-node" and doc["reserved_seq"]["USA"] > env.seq


def test_sequence_numbers_are_per_recipient():
    """One counter for all recipients would tell each partner how much the others received."""
    s = Signer(JPN, first_seq=1)
    for _ in range(5):
        s.sign(b"x", label=SHARED, kind="tracks", recipient="USA", time_s=1.0)
    assert s.sign(b"x", label=SHARED, kind="tracks", recipient="AUS", time_s=1.0).seq == 1


def test_the_signer_reserves_ahead_and_survives_a_crash_between_reservations(tmp_path):
    from siap.sharing.signing import SEQ_RESERVE_BLOCK

    state = tmp_path / "s.json"
    s = Signer(JPN, first_seq=10, state_path=state)
    used = [s.sign(b"x", label=SHARED, kind="tracks", recipient="USA", time_s=1.0).seq for _ in range(SEQ_RESERVE_BLOCK + 5)]
    # a crash now: nothing more written; the next incarnation starts above every number used
    assert Signer(JPN, first_seq=1, state_path=state).peek_seq("USA") > max(used)
