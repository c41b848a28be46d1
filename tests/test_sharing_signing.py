"""Signed envelopes: every attack is rejected with the right reason and counted; good traffic flows."""

from __future__ import annotations

import dataclasses
import hashlib
import struct

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sharing_support import sane_plots, sane_tracks

from siap.errors import ConfigError
from siap.records import empty_plots
from siap.sharing import (
    NodeIdentity,
    Policy,
    RejectedMessage,
    RejectReason,
    SignedEnvelope,
    Signer,
    TrustStore,
    Verifier,
    decode_batch,
    encode_batch,
)
from siap.sharing.audit import AuditLog, verify_audit_log
from siap.sharing.signing import ENVELOPE_DOMAIN

R = RejectReason
T0 = 1_800_000_000.0
ALL3 = "SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA"
JU = "SIAP//CONFIDENTIAL//REL TO JPN, USA"

POLICY = Policy.from_mapping(
    {
        "policy": "test",
        "partners": {
            "JPN": {
                "clearance": "SECRET",
                "track_label": ALL3,
                "sensors": {
                    "jpn-radar": {"label": JU, "share_plots": False},
                    "jpn-adsb": {"label": "SIAP//UNCLASSIFIED", "share_plots": True},
                },
            },
            "USA": {
                "clearance": "SECRET",
                "track_label": ALL3,
                "sensors": {"usa-radar": {"label": ALL3, "share_plots": True}},
            },
            "AUS": {
                "clearance": "SECRET",
                "track_label": ALL3,
                "sensors": {"aus-radar": {"label": ALL3, "share_plots": True}},
            },
        },
    },
    "test-policy",
)


@pytest.fixture
def world():
    ids = {p: NodeIdentity.generate(f"{p.lower()}-node", p) for p in ("JPN", "USA", "AUS")}
    store = TrustStore(ids.values())
    signers = {p: Signer(i, first_seq=1) for p, i in ids.items()}
    return ids, store, signers


def plots(sensor: str, partner: str, label: str, n: int = 3, t: float = T0) -> np.ndarray:
    return sane_plots(n, t, sensor, partner, label)


def tracks(partner: str, sources: str, label: str, n: int = 2, t: float = T0) -> np.ndarray:
    return sane_tracks(n, t, partner, sources, label)


def one(signer: Signer, batch: np.ndarray, t: float = T0) -> SignedEnvelope:
    envs = signer.sign_batch(batch, time_s=t, recipient="JPN")
    assert len(envs) == 1
    return envs[0]


def rejected(v: Verifier, env, now: float = T0 + 1) -> RejectedMessage:
    with pytest.raises(RejectedMessage) as info:
        v.verify(env, now)
    return info.value


def same_batch(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and len(a) == len(b)
    for name in a.dtype.names:
        np.testing.assert_array_equal(a[name], b[name])


# --- encoding ---------------------------------------------------------------------------
def test_encode_decode_round_trip():
    for batch in (plots("usa-radar", "USA", ALL3, 5), tracks("USA", "usa-radar", ALL3, 4), empty_plots(0)):
        same_batch(decode_batch(encode_batch(batch)), batch)
    with pytest.raises(ValueError, match="Arrow IPC"):
        decode_batch(b"not arrow")


def test_envelope_wire_round_trip_and_strictness(world):
    _, _, signers = world
    env = one(signers["USA"], plots("usa-radar", "USA", ALL3))
    wire = env.to_bytes()
    assert SignedEnvelope.from_bytes(wire) == env
    for bad in (wire + b"\x00", wire[:-1], b"XXXXXXXX" + wire[8:], b""):
        with pytest.raises(ValueError):
            SignedEnvelope.from_bytes(bad)


def test_signed_bytes_follow_the_documented_layout(world):
    ids, _, signers = world
    batch = plots("usa-radar", "USA", ALL3)
    env = one(signers["USA"], batch, t=T0 + 0.25)
    payload = encode_batch(batch)
    expected = (
        ENVELOPE_DOMAIN
        + b"\x08usa-node" + b"USA" + b"JPN"
        + (1).to_bytes(8, "big") + struct.pack(">d", T0 + 0.25)
        + bytes([len(ALL3)]) + ALL3.encode("ascii")
        + b"\x05plots" + b"\x00"  # cipher 0: payload in the clear
        + len(payload).to_bytes(4, "big") + hashlib.sha256(payload).digest()
    )
    assert env.payload == payload
    assert env.signed_message() == expected
    assert env.digest == hashlib.sha256(expected).digest()
    ids["USA"].public_key.verify(env.signature, expected)  # raises if the layout were different
    wire = env.to_bytes()
    assert wire[:8] == b"SIAPENV2" and wire[-65] == 64 and wire[-64:] == env.signature


# --- the good path ------------------------------------------------------------------------
def test_good_messages_accepted_and_returned_intact(world):
    _, store, signers = world
    v = Verifier(store, POLICY, recipient="JPN", max_age_s=30, max_clock_skew_s=2)
    b = plots("usa-radar", "USA", ALL3)
    same_batch(v.verify(one(signers["USA"], b).to_bytes(), T0 + 1), b)
    t = tracks("JPN", "jpn-radar,jpn-adsb", JU)
    same_batch(v.verify(one(signers["JPN"], t), T0 + 1), t)
    c = tracks("", "jpn-radar,usa-radar,aus-radar", JU)  # a coalition track fused by AUS
    same_batch(v.verify(one(signers["AUS"], c), T0 + 1), c)
    assert v.counts == {"accepted": 3}
    assert v.last_seq == {"usa-node": 1, "jpn-node": 1, "aus-node": 1}


def test_sign_batch_splits_by_label_and_all_parts_verify(world):
    _, store, signers = world
    t = np.concatenate([tracks("JPN", "jpn-radar", JU, 3), tracks("JPN", "jpn-adsb", ALL3, 2), tracks("JPN", "jpn-radar", JU, 1)])
    envs = signers["JPN"].sign_batch(t, time_s=T0, recipient="JPN")
    assert sorted(e.label for e in envs) == sorted([ALL3, JU])
    assert [e.seq for e in envs] == [1, 2]
    v = Verifier(store, POLICY, recipient="JPN")
    got = np.concatenate([v.verify(e.to_bytes(), T0) for e in envs])
    assert sorted(got["track_id"].tolist()) == sorted(t["track_id"].tolist())
    with pytest.raises(ValueError, match="unlabelled"):
        signers["JPN"].sign_batch(tracks("JPN", "jpn-radar", ""), time_s=T0, recipient="JPN")


# --- attacks, one by one --------------------------------------------------------------------
def test_unsigned(world):
    _, store, signers = world
    env = dataclasses.replace(one(signers["USA"], plots("usa-radar", "USA", ALL3)), signature=b"")
    assert rejected(Verifier(store, POLICY, recipient="JPN"), env.to_bytes()).reason is R.UNSIGNED


def test_forged_signature_byte_flipped(world):
    _, store, signers = world
    env = one(signers["USA"], plots("usa-radar", "USA", ALL3))
    sig = bytearray(env.signature)
    sig[10] ^= 0x01
    assert rejected(Verifier(store, POLICY, recipient="JPN"), dataclasses.replace(env, signature=bytes(sig))).reason is R.FORGED


def test_wrong_key_for_a_known_node(world):
    _, store, _ = world
    impostor = NodeIdentity("usa-node", "USA", Ed25519PrivateKey.generate())
    env = one(Signer(impostor, first_seq=1), plots("usa-radar", "USA", ALL3))
    rej = rejected(Verifier(store, POLICY, recipient="JPN"), env.to_bytes())
    assert rej.reason is R.FORGED and rej.origin == "usa-node"


def test_unknown_signer(world):
    _, store, _ = world
    rogue = NodeIdentity.generate("rogue-node", "USA")
    env = one(Signer(rogue, first_seq=1), plots("usa-radar", "USA", ALL3))
    assert rejected(Verifier(store, POLICY, recipient="JPN"), env).reason is R.UNKNOWN_SIGNER


def test_payload_byte_flipped(world):
    _, store, signers = world
    env = one(signers["USA"], plots("usa-radar", "USA", ALL3))
    p = bytearray(env.payload)
    p[len(p) // 2] ^= 0x40
    assert rejected(Verifier(store, POLICY, recipient="JPN"), dataclasses.replace(env, payload=bytes(p))).reason is R.ALTERED


@pytest.mark.parametrize(
    "field, value",
    [
        ("label", ALL3),
        ("label", "SIAP//UNCLASSIFIED"),
        ("seq", 2),
        ("time_s", T0 + 0.5),
        ("kind", "plots"),
        ("origin_partner", "USA"),
        ("origin_node", "usa-node"),
        ("recipient", "AUS"),
    ],
)
def test_any_field_changed_after_signing(world, field, value):
    _, store, signers = world
    env = one(signers["JPN"], tracks("JPN", "jpn-radar", JU))
    assert rejected(Verifier(store, POLICY, recipient="JPN"), dataclasses.replace(env, **{field: value}).to_bytes()).reason is R.ALTERED


def test_every_single_byte_flip_of_the_wire_is_rejected(world):
    _, store, signers = world
    wire = one(signers["USA"], plots("usa-radar", "USA", ALL3, n=1)).to_bytes()
    v = Verifier(store, POLICY, recipient="JPN")
    allowed = {R.MALFORMED, R.ALTERED, R.FORGED, R.UNKNOWN_SIGNER, R.UNSIGNED}
    for i in range(len(wire)):
        bad = bytearray(wire)
        bad[i] ^= 0x01
        with pytest.raises(RejectedMessage) as info:
            v.verify(bytes(bad), T0)
        assert info.value.reason in allowed, (i, info.value)
    assert v.counts["accepted"] == 0
    assert sum(v.counts.values()) == len(wire)
    v.verify(wire, T0)  # and the untouched message still goes through


def test_sequence_replayed(world):
    _, store, signers = world
    v = Verifier(store, POLICY, recipient="JPN")
    e1 = one(signers["USA"], plots("usa-radar", "USA", ALL3))
    e2 = one(signers["USA"], plots("usa-radar", "USA", ALL3))
    v.verify(e2, T0)
    assert rejected(v, e2, T0).reason is R.REPLAYED  # same again
    assert rejected(v, e1, T0).reason is R.REPLAYED  # older sequence delivered late
    assert v.counts == {"accepted": 1, "replayed": 2}


def test_old_message_outside_the_time_window(world):
    _, store, signers = world
    v = Verifier(store, POLICY, recipient="JPN", max_age_s=30, max_clock_skew_s=2)
    env = one(signers["USA"], plots("usa-radar", "USA", ALL3), t=T0)
    assert rejected(v, env, T0 + 30.001).reason is R.EXPIRED
    assert rejected(v, env, T0 - 2.001).reason is R.EXPIRED  # from the future beyond the skew
    assert v.counts == {"expired": 2}
    v.verify(env, T0 + 30.0)  # edge of the window is inside
    assert rejected(v, env, T0 + 31).reason is R.EXPIRED


def test_row_label_less_restrictive_than_policy_default(world):
    _, store, signers = world
    v = Verifier(store, POLICY, recipient="JPN")
    # JPN tracks from its restricted radar labelled as if releasable to AUS too
    rej = rejected(v, one(signers["JPN"], tracks("JPN", "jpn-radar", ALL3)))
    assert rej.reason is R.MISLABELLED and "less restrictive" in rej.detail
    # USA radar plots downgraded to UNCLASSIFIED
    assert rejected(v, one(signers["USA"], plots("usa-radar", "USA", "SIAP//UNCLASSIFIED"))).reason is R.MISLABELLED
    # a coalition track containing the JPN radar but labelled for AUS
    assert rejected(v, one(signers["AUS"], tracks("", "aus-radar,jpn-radar", ALL3))).reason is R.MISLABELLED


def test_row_labelled_for_a_partner_inside_an_envelope_labelled_otherwise(world):
    ids, store, _ = world
    v = Verifier(store, POLICY, recipient="JPN")
    rows = tracks("USA", "usa-radar", ALL3)
    rows["label"][1] = "SIAP//CONFIDENTIAL//REL TO AUS, USA"
    env = SignedEnvelope.seal(ids["USA"], recipient="JPN", seq=1, time_s=T0, label=ALL3, kind="tracks", payload=encode_batch(rows))
    rej = rejected(v, env)
    assert rej.reason is R.MISLABELLED and "differs from envelope label" in rej.detail
    # and the converse: rows more releasable than the envelope says
    rows2 = tracks("JPN", "jpn-radar", ALL3)
    env2 = SignedEnvelope.seal(ids["JPN"], recipient="JPN", seq=1, time_s=T0, label=JU, kind="tracks", payload=encode_batch(rows2))
    assert rejected(v, env2).reason is R.MISLABELLED
    # unlabelled rows inside a labelled envelope
    rows3 = tracks("USA", "usa-radar", "")
    env3 = SignedEnvelope.seal(ids["USA"], recipient="JPN", seq=2, time_s=T0, label=ALL3, kind="tracks", payload=encode_batch(rows3))
    assert rejected(v, env3).reason is R.MISLABELLED


def test_partner_signing_for_a_sensor_it_does_not_own(world):
    ids, store, signers = world
    v = Verifier(store, POLICY, recipient="JPN")
    # USA node ships AUS radar plots, claiming AUS ownership in the rows ...
    assert rejected(v, one(signers["USA"], plots("aus-radar", "AUS", ALL3))).reason is R.NOT_OWNER
    # ... or claiming the AUS radar as its own
    assert rejected(v, one(signers["USA"], plots("aus-radar", "USA", ALL3))).reason is R.NOT_OWNER
    # ... or a sensor the policy does not know
    assert rejected(v, one(signers["USA"], plots("ghost", "USA", ALL3))).reason is R.NOT_OWNER
    # USA node ships tracks in JPN's name
    assert rejected(v, one(signers["USA"], tracks("JPN", "jpn-radar", JU))).reason is R.NOT_OWNER
    # USA tracks that claim to use JPN radar plots, which are never shared raw
    assert rejected(v, one(signers["USA"], tracks("USA", "usa-radar,jpn-radar", JU))).reason is R.NOT_OWNER
    # a trusted USA key claiming to be a JPN node
    liar = NodeIdentity("usa-node", "JPN", ids["USA"].private_key)
    assert rejected(v, one(Signer(liar, first_seq=1), plots("jpn-adsb", "JPN", "SIAP//UNCLASSIFIED"))).reason is R.NOT_OWNER
    assert v.counts == {"not_owner": 6}


def test_raw_plots_of_an_unshareable_sensor(world):
    _, store, signers = world
    rej = rejected(Verifier(store, POLICY, recipient="JPN"), one(signers["JPN"], plots("jpn-radar", "JPN", JU)))
    assert rej.reason is R.NOT_SHAREABLE


def test_malformed(world):
    _, store, _ = world
    v = Verifier(store, POLICY, recipient="JPN")
    for junk in (b"", b"hello", b"SIAPENV1\x05"):
        assert rejected(v, junk).reason is R.MALFORMED
    assert v.counts == {"malformed": 3}


# --- the stream keeps flowing ------------------------------------------------------------
def test_attack_stream_then_good_message_still_accepted(world, tmp_path):
    ids, store, signers = world
    log = AuditLog(tmp_path / "audit.log", identity=ids["AUS"], run_id="run-1")
    v = Verifier(store, POLICY, recipient="JPN", max_age_s=30, max_clock_skew_s=2, audit=log)
    good1 = one(signers["USA"], plots("usa-radar", "USA", ALL3))
    v.verify(good1.to_bytes(), T0 + 1)
    flipped = bytearray(good1.payload)
    flipped[-5] ^= 0xFF
    sig = bytearray(good1.signature)
    sig[0] ^= 0x80
    attacks = [
        (dataclasses.replace(good1, signature=b""), R.UNSIGNED),
        (dataclasses.replace(good1, signature=bytes(sig)), R.FORGED),
        (one(Signer(NodeIdentity("usa-node", "USA", Ed25519PrivateKey.generate()), first_seq=99), plots("usa-radar", "USA", ALL3)), R.FORGED),
        (one(Signer(NodeIdentity.generate("x-node", "USA"), first_seq=1), plots("usa-radar", "USA", ALL3)), R.UNKNOWN_SIGNER),
        (dataclasses.replace(good1, payload=bytes(flipped)), R.ALTERED),
        (dataclasses.replace(good1, label=JU), R.ALTERED),
        (good1, R.REPLAYED),
        (one(signers["USA"], plots("usa-radar", "USA", ALL3), t=T0 - 60), R.EXPIRED),
        (one(signers["JPN"], tracks("JPN", "jpn-radar", ALL3)), R.MISLABELLED),
        (one(signers["USA"], plots("aus-radar", "AUS", ALL3)), R.NOT_OWNER),
        (one(signers["JPN"], plots("jpn-radar", "JPN", JU)), R.NOT_SHAREABLE),
        (b"garbage", R.MALFORMED),
    ]
    for env, reason in attacks:
        wire = env if isinstance(env, bytes) else env.to_bytes()
        assert rejected(v, wire, T0 + 1).reason is reason
    good2 = one(signers["USA"], plots("usa-radar", "USA", ALL3, n=7))
    assert len(v.verify(good2.to_bytes(), T0 + 1)) == 7
    good3 = one(signers["JPN"], tracks("JPN", "jpn-radar", JU))
    assert len(v.verify(good3, T0 + 1)) == 2
    expected = {r.value: 0 for r in R}
    for _, reason in attacks:
        expected[reason.value] += 1
    expected = {k: n for k, n in expected.items() if n}
    expected["accepted"] = 3
    assert dict(v.counts) == expected
    log.close()
    lines = (tmp_path / "audit.log").read_text().splitlines()
    assert len(lines) == len(attacks) and all('"kind":"reject"' in x for x in lines)
    assert verify_audit_log(tmp_path / "audit.log", store, node="aus-node", run_id="run-1", heads=[log.head()]).ok


# --- trust store ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["trust.yaml", "trustdir"])
def test_trust_store_save_load(world, tmp_path, name):
    ids, store, signers = world
    store.save(tmp_path / name)
    loaded = TrustStore.load(tmp_path / name)
    assert len(loaded) == 3 and {n.node_id: n.partner for n in loaded} == {"jpn-node": "JPN", "usa-node": "USA", "aus-node": "AUS"}
    Verifier(loaded, POLICY, recipient="JPN").verify(one(signers["USA"], plots("usa-radar", "USA", ALL3)), T0)


def test_identity_key_file_round_trip(world, tmp_path):
    ids, store, _ = world
    ids["JPN"].save_private_key(tmp_path / "jpn.pem")
    again = NodeIdentity.load(tmp_path / "jpn.pem", "jpn-node", "JPN")
    env = one(Signer(again, first_seq=5), tracks("JPN", "jpn-radar", JU))
    Verifier(store, POLICY, recipient="JPN").verify(env, T0)
    assert (tmp_path / "jpn.pem").stat().st_mode & 0o077 == 0


def test_bad_trust_store_files(tmp_path):
    (tmp_path / "t.yaml").write_text("nodes:\n  a-node:\n    partner: USA\n    public_key: nope\n")
    with pytest.raises(ConfigError, match=r"t\.yaml: nodes\.a-node\.public_key: expected a PEM Ed25519 public key"):
        TrustStore.load(tmp_path / "t.yaml")
    (tmp_path / "u.yaml").write_text("nodes: 3\n")
    with pytest.raises(ConfigError, match=r"u\.yaml: nodes: expected a mapping"):
        TrustStore.load(tmp_path / "u.yaml")
    with pytest.raises(ConfigError, match="expected a readable trust store"):
        TrustStore.load(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="already trusted"):
        TrustStore([NodeIdentity.generate("n1", "USA"), NodeIdentity.generate("n1", "USA")])


# --- provenance formats written by the tracker and by fusion -------------------------------
def test_track_source_formats_of_tracker_and_fusion(world):
    _, store, signers = world
    v = Verifier(store, POLICY, recipient="JPN")
    # fusion: coalition track sources are PARTNER:TRACK_ID, lower bound = partners' track labels
    v.verify(one(signers["AUS"], tracks("", "JPN:12,USA:7,AUS:3", ALL3)), T0)
    v.verify(one(signers["AUS"], tracks("", "JPN:12,USA:7+", ALL3)), T0)  # truncated list
    # tracker: sensor ids, truncated with ",..."
    v.verify(one(signers["JPN"], tracks("JPN", "jpn-radar,...", JU)), T0)
    assert v.counts == {"accepted": 3}
    assert rejected(v, one(signers["AUS"], tracks("", "JPN:12,KOR:3", ALL3))).reason is R.NOT_OWNER
    assert rejected(v, one(signers["AUS"], tracks("", "JPN:x", ALL3))).reason is R.NOT_OWNER
    assert rejected(v, one(signers["USA"], tracks("USA", "JPN:12", ALL3))).reason is R.NOT_OWNER
    assert rejected(v, one(signers["AUS"], tracks("", "", ALL3))).reason is R.MISLABELLED
    # a partner's tracker may list another partner's sensor whose plots are shared raw
    v.verify(one(signers["USA"], tracks("USA", "usa-radar,aus-radar", ALL3)), T0)
