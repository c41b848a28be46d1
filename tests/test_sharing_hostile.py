"""A partner with a valid key sending crafted content: nothing it sends may crash or poison the
receiver. Every bad message is rejected with a reason, counted and audited, and the receiver's
verifier, fuser and picture carry on exactly as if it had never arrived."""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sharing_support import sane_plots, sane_tracks

from siap.fusion import FusionConfig, TrackFuser
from siap.geo import geodetic_to_ecef
from siap.records import TRACK_DTYPE, arrow_schema, to_arrow
from siap.sharing import AuditLog, verify_audit_log
from siap.sharing.content import MAX_SPEED_MPS, decode_strict, geodetic_to_ecef_m
from siap.sharing.policy import load_policy
from siap.sharing.signing import (
    NodeIdentity,
    RejectedMessage,
    RejectReason,
    SignedEnvelope,
    Signer,
    TrustStore,
    Verifier,
    encode_batch,
)

T0 = 1_800_000_000.0
ALL3 = "SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA"
SENSOR = "JPN-GR-NOTO"  # pacific: JPN radar, releasable to all three partners
POLICY = load_policy("pacific")
JPN = NodeIdentity.generate("JPN-node", "JPN")
TRUST = TrustStore([JPN])


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _good(t: float = T0, n: int = 2, first_id: int = 100) -> np.ndarray:
    return sane_tracks(n, t, "JPN", SENSOR, ALL3, first_id=first_id)


def _receiver(tmp_path=None) -> Verifier:
    audit = AuditLog(tmp_path / "audit.jsonl", NodeIdentity.generate("USA-node", "USA"), "run-1") if tmp_path else None
    return Verifier(TRUST, POLICY, audit=audit, recipient="USA")


def _fuser() -> TrackFuser:
    return TrackFuser(FusionConfig(source_id_bits=32))


def test_our_geodetic_formula_agrees_with_pyproj():
    lat = np.array([-89.9, -45.0, 0.0, 35.0, 89.9])
    lon = np.array([-179.0, -90.0, 0.0, 135.0, 179.9])
    alt = np.array([-500.0, 0.0, 10_000.0, 9_000.0, 90_000.0])
    np.testing.assert_allclose(geodetic_to_ecef_m(lat, lon, alt), geodetic_to_ecef(lat, lon, alt), atol=1e-6)


# --- payloads that are not a siap record batch --------------------------------------------------
def _table(**change) -> pa.Table:
    t = to_arrow(_good())
    for name, column in change.items():
        i = t.schema.get_field_index(name)
        t = t.set_column(i, name, column) if column is not None else t.remove_column(i)
    return t


BAD_PAYLOADS = {
    "8 bytes": b"12345678",  # the example: it used to stop every receiver
    # pyarrow raises OSError (not ArrowInvalid) on these: decode_batch used to let it through
    "negative metadata length (OSError)": b"\xff\xff\xff\xff\xff\xff\xff\xff",
    "negative continuation token (OSError)": b"\x00\x00\x00\x80",
    "empty": b"",
    "arrow magic then garbage": b"\xff\xff\xff\xff" + b"\x00" * 4 + b"garbage!" * 4,
    "random": bytes(range(256)) * 3,
    "truncated stream": encode_batch(_good())[:-40],
    "plot schema in a track message": encode_batch(sane_plots(2, T0, SENSOR, "JPN", ALL3)),
    "float column as text": _ipc(_table(time_s=pa.array(["soon", "later"]))),
    "integer column as float": _ipc(_table(track_id=pa.array([1.5, 2.5]))),
    "null integers": _ipc(_table(n_updates=pa.array([1, None], type=pa.int32()))),
    "null floats": _ipc(_table(alt_m=pa.array([None, 1.0], type=pa.float64()))),
    "missing column": _ipc(_table(callsign=None)),
    "list of the wrong size": _ipc(_table(pos_ecef_m=pa.FixedSizeListArray.from_arrays(pa.array([1.0] * 4), 2))),
    "text longer than its field": _ipc(_table(callsign=pa.array(["ABCDEFGHIJKLMNOP", "X"]))),
    "dictionary-encoded label": _ipc(_table(label=pa.array([ALL3, ALL3]).dictionary_encode())),
    "extra column": _ipc(to_arrow(_good()).append_column("exfil", pa.array([1, 2]))),
}


@pytest.mark.parametrize("name", list(BAD_PAYLOADS))
def test_signed_payload_that_is_not_a_record_batch_is_malformed_and_the_stream_goes_on(tmp_path, name):
    v = _receiver(tmp_path)
    signer = Signer(JPN, first_seq=1)
    env = signer.sign(BAD_PAYLOADS[name], label=ALL3, kind="tracks", recipient="USA", time_s=T0)
    with pytest.raises(RejectedMessage) as info:
        v.verify(env.to_bytes(), T0)
    assert info.value.reason is RejectReason.MALFORMED
    assert "unexpected error" not in info.value.detail
    assert v.counts[RejectReason.MALFORMED.value] == 1
    good = signer.sign_batch(_good(T0 + 1), "tracks", time_s=T0 + 1, recipient="USA")[0]
    assert len(v.verify(good.to_bytes(), T0 + 1)) == 2
    v.audit.close()
    entries = verify_audit_log(
        tmp_path / "audit.jsonl", TrustStore([v.audit.identity]), node="USA-node", run_id="run-1", heads=[v.audit.head()]
    )
    assert entries.ok and entries.entries == 1  # the reject is audited


def test_strict_decoding_round_trips_and_rejects_every_schema_change():
    batch = _good()
    same = decode_strict(encode_batch(batch), TRACK_DTYPE)
    assert same.tobytes() == batch.tobytes()
    schema = arrow_schema(TRACK_DTYPE)
    for i in range(len(schema)):  # every column retyped as text is refused
        t = to_arrow(batch)
        t = t.set_column(i, schema.field(i).name, pa.array(["x"] * len(batch)))
        with pytest.raises(ValueError, match="schema differs"):
            decode_strict(_ipc(t), TRACK_DTYPE)


# --- good signature, impossible content -------------------------------------------------------
def _mutate(field: str, value):
    def f(b: np.ndarray) -> None:
        b[field][0] = value
    return f


def _move(lat: float, lon: float, alt: float):
    def f(b: np.ndarray) -> None:
        b["lat_deg"][0], b["lon_deg"][0], b["alt_m"][0] = lat, lon, alt
        b["pos_ecef_m"][0] = geodetic_to_ecef(lat, lon, alt)[0]
    return f


def _cov(c):
    return _mutate("cov_ecef", np.asarray(c, dtype=float))


IMPOSSIBLE = {
    "NaN position": _mutate("pos_ecef_m", [np.nan, 0.0, 0.0]),
    "infinite velocity": _mutate("vel_ecef_mps", [np.inf, 0.0, 0.0]),
    "huge finite position": _mutate("pos_ecef_m", [1e300, 1e300, 1e300]),
    "position off the earth (deep inside)": _mutate("pos_ecef_m", [1.0, 2.0, 3.0]),
    "position in orbit": _move(35.0, 135.0, 400_000.0),
    "underground": _move(35.0, 135.0, -50_000.0),
    "latitude beyond the pole": _mutate("lat_deg", 91.0),
    "map and fuser disagree": _mutate("lon_deg", 136.0),
    "speed beyond any aircraft": _mutate("vel_ecef_mps", [MAX_SPEED_MPS, MAX_SPEED_MPS, 0.0]),
    "NaN covariance": _cov(np.where(np.eye(6) > 0, np.nan, 0.0)),
    "covariance not positive definite": _cov(-np.eye(6)),
    "covariance singular": _cov(np.diag([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])),
    "covariance asymmetric": _cov(np.eye(6) + np.triu(np.ones((6, 6)), 1)),
    "covariance 1e300": _cov(np.eye(6) * 1e300),
    "covariance zero": _cov(np.zeros((6, 6))),
    "time far in the future": _mutate("time_s", T0 + 86_400.0),
    "time far in the past": _mutate("time_s", 0.0),
    "time NaN": _mutate("time_s", np.nan),
    "negative track id": _mutate("track_id", -5),
    "track id beyond 48 bits": _mutate("track_id", 1 << 60),
    "unknown status": _mutate("status", 77),
    "model probability 2": _mutate("model_prob", [2.0, -1.0]),
    "model probability NaN": _mutate("model_prob", [np.nan, 0.0]),
    "Mode S beyond 24 bits": _mutate("mode_s_address", 1 << 25),
    "Mode 3/A beyond 12 bits": _mutate("mode_3a", 0o17777),
    "negative update count": _mutate("n_updates", -1),
    "control characters in the callsign": _mutate("callsign", "AB\x1b[2J"),
}


@pytest.mark.parametrize("name", list(IMPOSSIBLE))
def test_impossible_content_is_rejected_and_the_picture_is_unchanged(name):
    signer = Signer(JPN, first_seq=1)
    v, v_ref = _receiver(), _receiver()
    fuser, fuser_ref = _fuser(), _fuser()
    bad = _good(T0, n=1)
    IMPOSSIBLE[name](bad)
    env = signer.sign_batch(bad, "tracks", time_s=T0, recipient="USA")[0]
    with pytest.raises(RejectedMessage) as info:
        v.verify(env.to_bytes(), T0)
    assert info.value.reason is RejectReason.IMPLAUSIBLE, info.value
    assert v.counts["implausible"] == 1
    # next to sane rows, the impossible row alone is dropped (counted and audited)
    mixed = _good(T0, n=3)
    IMPOSSIBLE[name](mixed)
    env = signer.sign_batch(mixed, "tracks", time_s=T0, recipient="USA")[0]
    kept = v.verify(env.to_bytes(), T0)
    assert kept["track_id"].tolist() == mixed["track_id"][1:].tolist()
    assert v.dropped_rows == {"implausible": 1}
    # the receiver carries on: the next good message is accepted and fused exactly as by a
    # receiver that never saw the bad one
    good = signer.sign_batch(_good(T0 + 1), "tracks", time_s=T0 + 1, recipient="USA")[0].to_bytes()
    picture = fuser.update(v.verify(good, T0 + 1), T0 + 1)
    reference = fuser_ref.update(v_ref.verify(good, T0 + 1), T0 + 1)
    assert picture.tobytes() == reference.tobytes() and len(picture) == 2


def test_impossible_plots_are_rejected():
    signer = Signer(JPN, first_seq=1)
    v = _receiver()
    label = str(POLICY.sensor_label(SENSOR))
    good = sane_plots(3, T0, SENSOR, "JPN", label)
    assert len(v.verify(signer.sign_batch(good, "plots", time_s=T0, recipient="USA")[0], T0)) == 3
    cases = {
        "sensor_lon_deg": 500.0, "sensor_alt_m": 1e12, "range_m": -1.0, "azimuth_rad": np.inf,
        "elevation_rad": 3.0, "kind": 9, "time_s": T0 + 1e6,
    }
    for i, (field, value) in enumerate(cases.items()):
        bad = good.copy()
        bad[field][:] = value  # every row impossible: the message is rejected
        with pytest.raises(RejectedMessage) as info:
            v.verify(signer.sign_batch(bad, "plots", time_s=T0, recipient="USA")[0], T0)
        assert info.value.reason is RejectReason.IMPLAUSIBLE, field
        assert v.counts["implausible"] == i + 1
        one_bad = good.copy()
        one_bad[field][0] = value  # one row impossible: that row is dropped
        kept = v.verify(signer.sign_batch(one_bad, "plots", time_s=T0, recipient="USA")[0], T0)
        assert kept["plot_id"].tolist() == [1, 2], field
    assert v.dropped_rows["implausible"] == len(cases)
    bad = good.copy()
    bad["cov"][:] = np.diag([1.0, -1.0, 1.0])
    with pytest.raises(RejectedMessage, match="implausible: .*cov"):
        v.verify(signer.sign_batch(bad, "plots", time_s=T0, recipient="USA")[0], T0)


# --- the fuzzer ---------------------------------------------------------------------------------
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-320, 1e300, -1e300, 6.4e6, 2**63, np.nan, np.inf]),
)


@st.composite
def payloads(draw):
    """Payload bytes a hostile partner might sign: random bytes, a mutated genuine payload, or a
    well-formed track batch with hostile values in any field."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=300))
    genuine = encode_batch(_good(T0, n=draw(st.integers(1, 3))))
    if choice == 1:
        data = bytearray(genuine)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
        return bytes(data)
    b = _good(T0, n=draw(st.integers(1, 3)))
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(TRACK_DTYPE.names))
        base = TRACK_DTYPE[field].base
        flat = b[field].reshape(len(b), -1)
        j = draw(st.integers(0, flat.shape[1] - 1))
        if base.kind == "f":
            with np.errstate(over="ignore"):  # huge floats into float32 fields become inf: fine
                flat[0, j] = draw(FLOATS)
        elif base.kind in "iu":
            info = np.iinfo(base)
            flat[0, j] = draw(st.integers(int(info.min), int(info.max)))
        elif base.kind == "U":
            flat[0, j] = draw(st.text(max_size=base.itemsize // 4))
        b[field] = flat.reshape(b[field].shape)
    return encode_batch(b)


@st.composite
def hostile_envelopes(draw):
    """Wire bytes: a validly signed envelope (trusted key!) with a hostile payload, or the bytes
    of a genuine envelope mutated in flight, or raw bytes."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return draw(st.binary(max_size=200))
    signer = Signer(JPN, first_seq=draw(st.integers(1, 2**40)))
    kind = draw(st.sampled_from(["tracks", "tracks", "plots", "other"]))
    t = draw(st.sampled_from([T0, T0 - 1, T0 + 1e9, float(np.nextafter(T0, 0))]))
    env = signer.sign(draw(payloads()), label=ALL3, kind=kind, time_s=t, recipient="USA")
    wire = env.to_bytes()
    if choice == 1:
        data = bytearray(wire)
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= draw(st.integers(1, 255))
        return bytes(data)
    if choice == 2:  # lengths that lie
        i = draw(st.integers(8, len(wire) - 4))
        return wire[:i] + struct.pack(">I", draw(st.integers(0, 2**32 - 1))) + wire[i + 4 :]
    return wire


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(messages=st.lists(hostile_envelopes(), min_size=1, max_size=3))
def test_fuzz_partner_key_messages_never_crash_and_every_bad_one_is_rejected_and_counted(messages):
    v = _receiver()
    fuser = _fuser()
    accepted = rejected = 0
    for data in messages:
        try:
            batch = v.verify(data, T0)
        except RejectedMessage as rej:
            assert isinstance(rej.reason, RejectReason)
            assert "unexpected error" not in rej.detail, rej.detail  # no check crashed
            event(rej.reason.value)
            rejected += 1
            continue
        accepted += 1
        event("accepted")
        # whatever is accepted is sane and the fuser takes it without error
        assert np.isfinite(batch["pos_ecef_m"]).all() and np.isfinite(batch["cov_ecef"]).all()
        fuser.update(batch, T0)
    assert sum(v.counts.values()) == len(messages)
    assert v.counts["accepted"] == accepted and sum(c for k, c in v.counts.items() if k != "accepted") == rejected
    # the receiver carries on
    good = Signer(JPN, first_seq=2**41).sign_batch(_good(T0 + 1, first_id=7), "tracks", time_s=T0 + 1, recipient="USA")[0]
    assert len(fuser.update(v.verify(good.to_bytes(), T0 + 1), T0 + 1)) >= 1


@st.composite
def extreme_but_possible_tracks(draw):
    """Tracks at the edges of what the verifier accepts: any place on earth in the altitude band,
    speeds up to the limit, covariances up to the largest standard deviation and badly
    conditioned. They must be accepted, and must not break the fuser."""
    n = draw(st.integers(1, 4))
    b = _good(T0, n=n)
    for i in range(n):
        lat = draw(st.floats(-89.999, 89.999))
        lon = draw(st.floats(-180.0, 180.0))
        alt = draw(st.floats(-2000.0, 100_000.0))
        b["lat_deg"][i], b["lon_deg"][i], b["alt_m"][i] = lat, lon, alt
        b["pos_ecef_m"][i] = geodetic_to_ecef_m(np.array([lat]), np.array([lon]), np.array([alt]))[0]
        d = np.array(draw(st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3)))
        d = d / max(np.linalg.norm(d), 1e-9)
        b["vel_ecef_mps"][i] = d * draw(st.floats(0.0, MAX_SPEED_MPS * 0.999))
        q, _ = np.linalg.qr(np.array(draw(st.lists(st.floats(-1, 1), min_size=36, max_size=36))).reshape(6, 6) + 3 * np.eye(6))
        sd = np.array(draw(st.lists(st.floats(1e-2, 9.9e3), min_size=6, max_size=6)))
        c = q @ np.diag(sd**2) @ q.T
        b["cov_ecef"][i] = 0.5 * (c + c.T)
    return b


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(extreme_but_possible_tracks(), min_size=1, max_size=3))
def test_accepted_extremes_never_break_the_fuser(batches):
    signer = Signer(JPN, first_seq=1)
    v = _receiver()
    fuser = _fuser()
    for k, b in enumerate(batches):
        t = T0 + k
        b = b.copy()
        b["time_s"] = t
        try:
            got = v.verify(signer.sign_batch(b, "tracks", time_s=t, recipient="USA")[0], t)
        except RejectedMessage as rej:
            assert rej.reason is RejectReason.IMPLAUSIBLE and "covariance" in rej.detail, rej
            continue
        out = fuser.update(got, t)
        assert np.isfinite(out["pos_ecef_m"]).all()


def test_a_verifier_bug_is_contained_and_counted(monkeypatch):
    """Even an unforeseen exception inside the checks rejects the message instead of stopping
    the receiver (and says so, so the fuzzer above can insist it never happens)."""
    v = _receiver()
    env = Signer(JPN, first_seq=1).sign_batch(_good(), "tracks", time_s=T0, recipient="USA")[0]
    monkeypatch.setattr(v, "_check_rows", lambda *a: 1 / 0)
    with pytest.raises(RejectedMessage, match="unexpected error while checking: ZeroDivisionError"):
        v.verify(env, T0)
    assert v.counts["malformed"] == 1


def test_messages_over_the_size_limit_are_refused_before_parsing():
    v = Verifier(TRUST, POLICY, recipient="USA", max_message_bytes=10_000)
    env = Signer(JPN, first_seq=1).sign_batch(_good(n=50), "tracks", time_s=T0, recipient="USA")[0]
    with pytest.raises(RejectedMessage, match="malformed: .*larger than"):
        v.verify(env.to_bytes(), T0)


_ = SignedEnvelope  # re-exported name kept in the public API
