"""Benchmark: what signing, sealing and the receiver's checks cost per message.

For track batches of 1, 100 and 1 000 rows (physically sane, over Japan), side by side in one
run: ``Signer.sign_batch`` and ``Verifier.verify`` with the payload in the clear and sealed to
the recipient (X25519 + HKDF + ChaCha20-Poly1305); the verifier always runs the strict Arrow
decoding and the plausibility checks of ``siap.sharing.content``. CPU time (``process_time``)
per message, median of ``repeats`` rounds, because the machine is shared; and the wire size.

Run: ``python bench/bench_sharing.py [--quick]``. Writes bench/results/sharing.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "sharing.json"
sys.path.insert(0, str(HERE))

from machine import machine_info  # noqa: E402

from siap.geo import geodetic_to_ecef  # noqa: E402
from siap.records import TrackStatus, empty_tracks  # noqa: E402
from siap.sharing.policy import load_policy  # noqa: E402
from siap.sharing.signing import NodeIdentity, Signer, TrustStore, Verifier  # noqa: E402

LABEL = "SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA"


def tracks(n: int, t: float) -> np.ndarray:
    rng = np.random.default_rng(n)
    b = empty_tracks(n)
    b["time_s"] = t
    b["track_id"] = np.arange(n)
    b["status"] = int(TrackStatus.CONFIRMED)
    b["partner"], b["sources"], b["label"] = "JPN", "JPN-GR-NOTO", LABEL
    b["lat_deg"], b["lon_deg"], b["alt_m"] = rng.uniform(25, 45, n), rng.uniform(125, 145, n), rng.uniform(0, 12e3, n)
    b["pos_ecef_m"] = geodetic_to_ecef(b["lat_deg"], b["lon_deg"], b["alt_m"])
    b["vel_ecef_mps"] = rng.normal(0, 150, (n, 3))
    b["cov_ecef"] = np.diag([400.0, 400.0, 900.0, 25.0, 25.0, 36.0])
    b["model_prob"] = [0.9, 0.1]
    b["n_updates"] = 5
    return b


def run(n: int, sealed: bool, messages: int, repeats: int) -> dict:
    ids = {p: NodeIdentity.generate(f"{p}-node", p) for p in ("JPN", "USA")}
    trust = TrustStore(ids.values())
    policy = load_policy("pacific")
    batch = tracks(n, 1000.0)
    sign_ms, verify_ms = [], []
    size = 0
    for _ in range(repeats):
        signer = Signer(ids["JPN"], first_seq=1, encrypt_with=trust if sealed else None)
        verifier = Verifier(trust, policy, recipient="USA", max_age_s=1e9,
                            decryption_key=ids["USA"].encryption_key if sealed else None)
        t0 = time.process_time()
        wires = [signer.sign_batch(batch, "tracks", time_s=1000.0, recipient="USA")[0].to_bytes() for _ in range(messages)]
        t1 = time.process_time()
        for w in wires:
            got = verifier.verify(w, 1000.0)
        t2 = time.process_time()
        assert len(got) == n and verifier.counts["accepted"] == messages
        sign_ms.append(1e3 * (t1 - t0) / messages)
        verify_ms.append(1e3 * (t2 - t1) / messages)
        size = len(wires[0])
    return {"rows": n, "sealed": sealed, "sign_ms_cpu": statistics.median(sign_ms),
            "verify_ms_cpu": statistics.median(verify_ms), "wire_bytes": size}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    messages, repeats = (10, 2) if args.quick else (100, 5)
    rows = [run(n, sealed, messages if n < 1000 else max(messages // 5, 2), repeats)
            for n in (1, 100, 1000) for sealed in (False, True)]
    result = {"benchmark": "sharing", "quick": args.quick, "machine": machine_info(), "results": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"{'rows':>6} {'sealed':>6} {'sign ms':>8} {'verify ms':>9} {'bytes':>8}")
    for r in rows:
        print(f"{r['rows']:6d} {r['sealed']!s:>6} {r['sign_ms_cpu']:8.2f} {r['verify_ms_cpu']:9.2f} {r['wire_bytes']:8d}")
    return result


if __name__ == "__main__":
    main()
