"""Record batches round-trip through Arrow and Parquet without loss."""

import numpy as np
import pytest

from siap import records


def _filled(dtype, n, seed=0):
    rng = np.random.default_rng(seed)
    arr = np.zeros(n, dtype=dtype)
    for name in dtype.names:
        fd = dtype[name]
        shape = (n, *fd.shape)
        if fd.base.kind == "f":
            arr[name] = rng.normal(size=shape)
        elif fd.base.kind in "iu":
            arr[name] = rng.integers(0, 100, size=shape)
        elif fd.base.kind == "b":
            arr[name] = rng.integers(0, 2, size=shape).astype(bool)
        elif fd.base.kind == "U":
            arr[name] = [f"s{i % 7}"[: fd.base.itemsize // 4] for i in range(n)]
    return arr


@pytest.mark.parametrize("dtype", [records.PLOT_DTYPE, records.TRACK_DTYPE, records.TRUTH_DTYPE])
def test_parquet_round_trip_is_lossless(tmp_path, dtype):
    batch = _filled(dtype, 257)
    path = tmp_path / "x.parquet"
    records.write_parquet(batch, path, metadata={"scenario": "test"})
    back, meta = records.read_parquet(path)
    assert back.dtype == dtype
    assert meta["scenario"] == "test"
    for name in dtype.names:
        np.testing.assert_array_equal(back[name], batch[name])


def test_empty_batches_round_trip(tmp_path):
    path = tmp_path / "e.parquet"
    records.write_parquet(records.empty_plots(0), path)
    back, _ = records.read_parquet(path)
    assert len(back) == 0 and back.dtype == records.PLOT_DTYPE


def test_absent_values_are_marked():
    p = records.empty_plots(2)
    assert (p["mode_s_address"] == records.NO_MODE_S).all()
    assert (p["truth_id"] == records.NO_TRUTH).all()
    assert np.isnan(p["range_m"]).all()


def test_missing_column_is_named():
    table = records.to_arrow(records.empty_truth(3)).drop_columns(["callsign"])
    with pytest.raises(ValueError, match="callsign"):
        records.from_arrow(table, records.TRUTH_DTYPE)


@pytest.mark.parametrize("dtype", [records.PLOT_DTYPE, records.TRACK_DTYPE, records.TRUTH_DTYPE])
def test_take_and_concatenate_equal_numpy_indexing(dtype):
    batch = _filled(dtype, 97, seed=3)
    rng = np.random.default_rng(4)
    idx = rng.integers(0, 97, 150)
    mask = rng.random(97) < 0.4
    for index in (idx, mask, np.zeros(0, np.int64), np.zeros(97, bool)):
        got = records.take(batch, index)
        assert got.dtype == dtype and got.tobytes() == batch[index].tobytes()
    strided = batch[::3]  # not contiguous
    assert records.take(strided, [2, 0]).tobytes() == strided[[2, 0]].tobytes()
    parts = [batch[:10], batch[10:10], strided]
    both = records.concatenate(parts)
    assert both.dtype == dtype and both.tobytes() == np.concatenate(parts).tobytes()
    with pytest.raises(ValueError, match="different dtypes"):
        records.concatenate([batch, records.empty_truth(1) if dtype != records.TRUTH_DTYPE
                             else records.empty_plots(1)])
