"""atheris fuzzer for the Mode S parsers (not collected by pytest).

    PYTHONPATH=src python tests/fuzz/fuzz_modes.py -max_total_time=120 [corpus_dir]

Each input is fed to the Beast framer (whole and split in two), the AVR and JSON-lines
readers, and the decoder over whatever frames came out. Anything that raises is a bug: copy
the crashing input into tests/data/fuzz/modes/ with its expected counts (see
test_regression_corpus).
"""

from __future__ import annotations

import os
import sys

import atheris

# The kernels run as plain Python here (numba cannot compile atheris-instrumented bytecode),
# so the fuzzer sees coverage inside them; the compiled kernels are the same source.
os.environ["NUMBA_DISABLE_JIT"] = "1"

import numpy as np  # noqa: E402

with atheris.instrument_imports(include=["siap.formats"]):
    from siap.formats import modes

RX = modes.ReceiverConfig(lat_deg=49.0, lon_deg=2.5)


def one(data: bytes) -> None:
    cut = data[0] if data else 0
    framer = modes.BeastFramer(0.0)
    dec = modes.ModeSDecoder(RX)
    a = framer.feed(data[:cut], final=False)
    b = framer.feed(data[cut:], final=True)
    dec.decode(a)
    dec.decode(b)
    whole = modes.frame_beast(data)
    assert len(whole[0]) >= len(a) + len(b) - 1
    text = data.decode("latin-1").splitlines()
    dec.decode(modes.frame_avr(text, arrival_s=1.0))
    dec.decode(modes.frame_jsonl(text))
    n = len(data) // 14
    if n:
        msg = np.frombuffer(data[: n * 14], np.uint8).reshape(n, 14).copy()
        length = np.where(msg[:, 0] >> 3 >= 16, 14, 7).astype(np.uint8)
        dec.decode(modes.Frames(np.arange(n, dtype=float) + 2.0, msg, length, np.zeros(n, np.int16), np.arange(n)))


if __name__ == "__main__":
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()
