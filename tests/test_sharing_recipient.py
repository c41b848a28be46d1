"""A verifier that knows its partner refuses genuinely signed data that partner may not see."""

import numpy as np
import pytest

from siap import records
from siap.sharing.policy import load_policy
from siap.sharing.signing import NodeIdentity, RejectedMessage, Signer, TrustStore, Verifier


def _tracks(label: str, sensor: str) -> np.ndarray:
    t = records.empty_tracks(2)
    t["time_s"] = 100.0
    t["track_id"] = [1, 2]
    t["partner"] = "JPN"
    t["label"] = label
    t["sources"] = sensor
    return t


def test_recipient_refuses_label_not_releasable_to_it_and_keeps_going():
    policy = load_policy("pacific")
    jpn = NodeIdentity.generate("JPN-node", "JPN")
    trust = TrustStore()
    trust.add(jpn)
    signer = Signer(jpn, first_seq=1)
    restricted = "SIAP//CONFIDENTIAL//REL TO JPN, USA"
    shared = "SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA"
    at_aus = Verifier(trust, policy, recipient="AUS")
    at_usa = Verifier(trust, policy, recipient="USA")
    env = signer.sign_batch(_tracks(restricted, "JPN-GR-GOTO"), "tracks", time_s=100.0)[0]
    with pytest.raises(RejectedMessage) as err:
        at_aus.verify(env.to_bytes(), now_s=100.0)
    assert err.value.reason.value == "not_releasable"
    assert at_aus.counts["not_releasable"] == 1
    assert len(at_usa.verify(env.to_bytes(), now_s=100.0)) == 2  # the entitled partner accepts it
    ok = signer.sign_batch(_tracks(shared, "JPN-GR-NOTO"), "tracks", time_s=101.0)[0]
    assert len(at_aus.verify(ok.to_bytes(), now_s=101.0)) == 2  # nothing else lost at AUS


def test_unknown_recipient_is_refused_at_construction():
    with pytest.raises(KeyError):
        Verifier(TrustStore(), load_policy("pacific"), recipient="FRA")
