"""atheris harness for the ASTERIX decoder (not collected by pytest).

    PYTHONPATH=src python tests/fuzz/fuzz_asterix.py tests/data/fuzz/asterix -max_total_time=60

The numba-compiled framer is not instrumented, so atheris's coverage feedback only sees the
Python around it: treat this as a random crash search seeded by the corpus. An input that
raises or breaks an invariant is written by libFuzzer as crash-*; keep it in
tests/data/fuzz/asterix/ (``*.bin``) where ``test_regression_corpus`` re-checks it.
"""

import sys

import atheris

with atheris.instrument_imports():
    import numpy as np

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
