"""atheris fuzzer for everything a partner's message goes through (not collected by pytest).

    PYTHONPATH=src python tests/fuzz/fuzz_envelope.py -max_total_time=120 [corpus_dir]

Each input is tried three ways at a receiver: as raw wire bytes; as the payload of an envelope
validly signed (and sealed) by a trusted partner key, i.e. what a compromised partner can send;
and as a mutation of a genuine signed track batch (the input's bytes XORed over the payload).
The verifier must accept the message or raise RejectedMessage, never anything else and never
"unexpected error", and whatever it accepts must go through a TrackFuser. A crash is a bug:
keep the input in tests/data/fuzz/sharing/ (tests/test_sharing_hostile.py replays them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["siap.sharing"]):
    from siap.sharing.policy import load_policy
    from siap.sharing.signing import (
        NodeIdentity,
        RejectedMessage,
        Signer,
        TrustStore,
        Verifier,
        encode_batch,
    )

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sharing_support import sane_tracks  # noqa: E402

from siap.fusion import FusionConfig, TrackFuser  # noqa: E402

T0 = 1_800_000_000.0
LABEL = "SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA"
POLICY = load_policy("pacific")
JPN, USA = NodeIdentity.generate("JPN-node", "JPN"), NodeIdentity.generate("USA-node", "USA")
TRUST = TrustStore([JPN, USA])
GENUINE = encode_batch(sane_tracks(3, T0, "JPN", "JPN-GR-NOTO", LABEL))


def one(data: bytes) -> None:
    signer = Signer(JPN, first_seq=1, encrypt_with=TRUST)
    verifier = Verifier(TRUST, POLICY, recipient="USA", decryption_key=USA.encryption_key)
    fuser = TrackFuser(FusionConfig(source_id_bits=32))
    mutated = bytes(b ^ data[i % len(data)] if data else b for i, b in enumerate(GENUINE))
    for message in (
        data,
        signer.sign(data, label=LABEL, kind="tracks", recipient="USA", time_s=T0).to_bytes(),
        signer.sign(mutated, label=LABEL, kind="tracks", recipient="USA", time_s=T0).to_bytes(),
    ):
        try:
            batch = verifier.verify(message, T0)
        except RejectedMessage as rej:
            if "unexpected error" in rej.detail:
                raise AssertionError(rej.detail) from None
            continue
        fuser.update(batch, T0)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()
