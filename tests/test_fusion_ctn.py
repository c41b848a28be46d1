"""Coalition track number encoding: injective, order-preserving, positive int64."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from siap.fusion import decode_ctn, local_key, partner_code
from siap.fusion.ctn import MAX_GENERATION, MAX_LOCAL_ID, ctn_with_generation, valid_partner

partners = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=3)
ids = st.integers(0, MAX_LOCAL_ID)


@given(p=partners, i=ids, g=st.integers(0, MAX_GENERATION))
def test_round_trip_and_positive(p, i, g):
    c = ctn_with_generation(int(local_key(p, i)[0]), g)
    assert 0 <= c < 2**63
    assert decode_ctn(c) == (p, g, i)
    assert np.int64(c) == c


@given(a=st.tuples(partners, ids), b=st.tuples(partners, ids))
def test_key_order_is_partner_then_track_id(a, b):
    ka, kb = int(local_key(*a)[0]), int(local_key(*b)[0])
    assert (ka < kb) == (a < b)
    assert (ka == kb) == (a == b)


def test_known_values():
    assert partner_code("A")[0] == 1 << 10
    assert partner_code("JPN")[0] == (10 << 10) | (16 << 5) | 14
    assert local_key("JPN", 12)[0] == (((10 << 10) | (16 << 5) | 14) << 48) | 12
    assert list(valid_partner(["JPN", "", "jpn", "J1N", "US", "U S"])) == [
        True,
        False,
        False,
        False,
        True,
        False,
    ]


def test_generation_out_of_range():
    with pytest.raises(ValueError):
        ctn_with_generation(1, MAX_GENERATION + 1)
