"""Sealed envelopes (each payload encrypted to its recipient node) and keys that mean something:
fingerprints, private keys that stay home, revocation and re-keying."""

from __future__ import annotations

import dataclasses
import stat

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
    encode_batch,
    open_payload,
)

POLICY = load_policy("pacific")
ALL3 = "SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA"
T0 = 1_800_000_000.0


@pytest.fixture
def coalition():
    ids = {p: NodeIdentity.generate(f"{p}-node", p) for p in ("JPN", "USA", "AUS")}
    return ids, TrustStore(ids.values())


def _batch(t=T0):
    b = sane_tracks(3, t, "JPN", "JPN-GR-NOTO", ALL3)
    b["callsign"] = "SECRETCS"
    return b


def _reason(v, data, now=T0):
    with pytest.raises(RejectedMessage) as err:
        v.verify(data, now)
    return err.value.reason.value


def test_a_sealed_release_opens_only_at_its_recipient(coalition):
    ids, trust = coalition
    signer = Signer(ids["JPN"], first_seq=1, encrypt_with=trust)
    env = signer.sign_batch(_batch(), "tracks", time_s=T0, recipient="USA")[0]
    wire = env.to_bytes()
    assert env.cipher == 1
    # a broker or a tap sees routing metadata and ciphertext only
    plain = encode_batch(_batch())
    assert b"SECRETCS" not in wire and b"JPN-GR-NOTO" not in wire and b"ARROW" not in wire
    assert plain[:64] not in wire
    assert b"JPN-node" in wire and ALL3.encode() in wire  # routing metadata stays readable
    usa = Verifier(trust, POLICY, recipient="USA", decryption_key=ids["USA"].encryption_key)
    got = usa.verify(wire, T0)
    assert got.tobytes() == _batch().tobytes()
    # another partner's node cannot open it, whatever it is addressed as
    fields = env.fields()
    with pytest.raises(ValueError, match="cannot open"):
        open_payload(env.payload, ids["AUS"].encryption_key, fields)
    aus = Verifier(trust, POLICY, recipient="AUS", decryption_key=ids["AUS"].encryption_key)
    assert _reason(aus, wire) == "misrouted"


def test_sealed_payloads_cannot_be_altered_downgraded_or_opened_without_a_key(coalition):
    ids, trust = coalition
    signer = Signer(ids["JPN"], first_seq=1, encrypt_with=trust)
    usa = Verifier(trust, POLICY, recipient="USA", decryption_key=ids["USA"].encryption_key)
    env = signer.sign_batch(_batch(), "tracks", time_s=T0, recipient="USA")[0]
    flipped = bytearray(env.payload)
    flipped[40] ^= 1
    assert _reason(usa, dataclasses.replace(env, payload=bytes(flipped)).to_bytes()) == "altered"
    assert _reason(usa, dataclasses.replace(env, cipher=0).to_bytes()) == "altered"  # the cipher byte is signed
    # the sender itself seals with a wrong key (or a stranger's): signed, but it does not open
    stranger = NodeIdentity.generate("USA-node", "USA")
    bad = SignedEnvelope.seal(
        ids["JPN"], recipient="USA", seq=5, time_s=T0, label=ALL3, kind="tracks", payload=encode_batch(_batch()),
        encrypt_to=stranger.encryption_key.public_key(),
    )
    assert _reason(usa, bad) == "undecryptable"
    # a receiver that requires sealing refuses the clear (no downgrade); one without a key cannot open
    clear = Signer(ids["JPN"], first_seq=10).sign_batch(_batch(), "tracks", time_s=T0, recipient="USA")[0]
    assert _reason(usa, clear) == "unsealed"
    keyless = Verifier(trust, POLICY, recipient="USA")
    assert _reason(keyless, signer.sign_batch(_batch(), "tracks", time_s=T0, recipient="USA")[0]) == "undecryptable"
    # the good path still works after all of that
    good = signer.sign_batch(_batch(T0 + 1), "tracks", time_s=T0 + 1, recipient="USA")[0]
    assert len(usa.verify(good.to_bytes(), T0 + 1)) == 3
    assert usa.counts == {"altered": 2, "undecryptable": 1, "unsealed": 1, "accepted": 1}


def test_signer_refuses_to_seal_to_a_partner_without_a_pinned_encryption_key(coalition):
    ids, _ = coalition
    only_signing = TrustStore([dataclasses.replace(ids["USA"].trusted(), encryption_key=None)])
    with pytest.raises(ValueError, match="cannot seal to USA"):
        Signer(ids["JPN"], encrypt_with=only_signing).sign_batch(_batch(), "tracks", time_s=T0, recipient="USA")


def test_fingerprints_are_comparable_and_checked(coalition, tmp_path):
    ids, trust = coalition
    fp = trust.get("JPN-node").fingerprint
    groups = fp.split(" ")
    assert len(groups) == 10 and all(len(g) == 4 and int(g, 16) >= 0 for g in groups)
    assert fp != trust.get("USA-node").fingerprint
    assert fp != NodeIdentity.generate("JPN-node", "JPN").trusted().fingerprint
    trust.save(tmp_path / "trust.yaml")
    text = (tmp_path / "trust.yaml").read_text()
    assert fp in text and "PRIVATE" not in text  # only public keys are exchanged
    loaded = TrustStore.load(tmp_path / "trust.yaml")
    assert loaded.get("JPN-node").fingerprint == fp
    (tmp_path / "trust.yaml").write_text(text.replace(fp, "0000 " * 9 + "0000"))
    with pytest.raises(ConfigError, match="fingerprint"):
        TrustStore.load(tmp_path / "trust.yaml")
    trust.save(tmp_path / "dir")
    assert TrustStore.load(tmp_path / "dir").get("USA-node").fingerprint == trust.get("USA-node").fingerprint


def test_private_keys_stay_with_their_node(coalition, tmp_path):
    ids, _ = coalition
    path = tmp_path / "JPN" / "JPN.pem"
    ids["JPN"].save_private_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    back = NodeIdentity.load(path, "JPN-node", "JPN")
    assert back.trusted().fingerprint == ids["JPN"].trusted().fingerprint
    (tmp_path / "junk.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="junk.pem"):
        NodeIdentity.load(tmp_path / "junk.pem", "JPN-node", "JPN")


def test_key_compromise_drill_revoke_rekey_and_the_old_key_is_refused(coalition, tmp_path):
    ids, trust = coalition
    old = ids["JPN"]
    usa = Verifier(trust, POLICY, recipient="USA", decryption_key=ids["USA"].encryption_key)
    before = Signer(old, first_seq=1, encrypt_with=trust).sign_batch(_batch(), "tracks", time_s=T0, recipient="USA")[0]
    assert len(usa.verify(before, T0)) == 3
    # JPN's key is stolen: every partner revokes it, JPN makes new keys, partners pin them
    trust.revoke("JPN-node")
    new = NodeIdentity.generate("JPN-node", "JPN")
    trust.add(new)
    thief = Signer(old, first_seq=100, encrypt_with=trust)
    stolen = thief.sign_batch(_batch(T0 + 1), "tracks", time_s=T0 + 1, recipient="USA")[0]
    assert _reason(usa, stolen, T0 + 1) == "revoked"
    fresh = Signer(new, first_seq=200, encrypt_with=trust).sign_batch(_batch(T0 + 2), "tracks", time_s=T0 + 2, recipient="USA")[0]
    assert len(usa.verify(fresh, T0 + 2)) == 3
    with pytest.raises(ValueError, match="revoked"):
        trust.add(old)  # a revoked key is never trusted again
    # the revocation survives saving and loading the trust store
    trust.save(tmp_path / "trust.yaml")
    again = TrustStore.load(tmp_path / "trust.yaml")
    usa2 = Verifier(again, POLICY, recipient="USA", decryption_key=ids["USA"].encryption_key)
    assert _reason(usa2, thief.sign_batch(_batch(T0 + 3), "tracks", time_s=T0 + 3, recipient="USA")[0], T0 + 3) == "revoked"
    with pytest.raises(ValueError, match="YAML"):
        trust.save(tmp_path / "as-dir")
