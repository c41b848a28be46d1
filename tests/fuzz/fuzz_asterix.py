"""atheris harness for the ASTERIX decoder (not collected by pytest).

    PYTHONPATH=src python tests/fuzz/fuzz_asterix.py /tmp/asterix-corpus tests/data/fuzz/asterix -max_total_time=60

The numba-compiled framer cannot be instrumented (atheris's bytecode instrumentation breaks
numba), so libFuzzer gets no coverage feedback from it: this is a mutation-based crash search
seeded by the corpus, not a coverage-guided one. An input that
raises or breaks an invariant is written by libFuzzer as crash-*; keep it in
tests/data/fuzz/asterix/ (``*.bin``) where ``test_regression_corpus`` re-checks it.
"""

import sys

import atheris
import numpy as np

# Not under atheris.instrument_imports(): its bytecode instrumentation breaks numba's
# compilation of the framer and decoders.
from siap.formats.asterix import decode


def one_input(data: bytes) -> None:
    d = decode(data, log=False)
    n = len(data)
    for t in (d.cat048, d.cat034, d.cat021):
        assert np.all((t["offset"] >= 0) & (t["offset"] < n))
    assert np.all((d.errors["offset"] >= 0) & (d.errors["offset"] < n))
    assert np.all(d.errors["nbytes"] >= 1)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
