"""TrackFuser: association over time, CTN persistence, hysteresis, Mode S, bad input, output fields."""

import numpy as np
import pytest

from siap import records
from siap.errors import InputError
from siap.fusion import FusionConfig, TrackFuser, decode_ctn, format_sources, local_key
from siap.fusion.synthetic import draw, make_local_tracks, objects_on_grid

T0 = 1_700_000_000.0


def key(p, i):
    return int(local_key(p, i)[0])


def iso_cov(n, sp=40.0, sv=3.0):
    return np.broadcast_to(np.diag([sp**2] * 3 + [sv**2] * 3), (n, 6, 6)).copy()


def reports(rng, t, partner, obj, ids, pos0, vel, **kw):
    """Local tracks of ``partner`` for objects ``obj`` (indices) at time t: truth + own noise."""
    obj = np.asarray(obj)
    own = iso_cov(len(obj))
    pos = pos0[obj] + vel[obj] * (t - T0)
    kw.setdefault("n_updates", 10 + round(t - T0))  # every report is a fresh estimate
    return make_local_tracks(pos, vel[obj], partner, ids, t, own, own_err=draw(rng, own), **kw)


def by_founder(out):
    return {s: c for s, c in zip(out["sources"], out["track_id"], strict=True)}


def ctn_of_member(fuser, partner, tid):
    for c, mem in fuser.members().items():
        if (partner, tid) in mem:
            return c
    return None


def test_tracks_of_one_object_associate_after_hysteresis_and_founder_is_deterministic():
    rng = np.random.default_rng(1)
    n = 30
    pos0, vel = objects_on_grid(n, spacing_m=15_000)
    f = TrackFuser(FusionConfig(associate_after=2))
    outs = []
    for k in range(3):
        t = T0 + 4 * k
        batch = np.concatenate(
            [
                reports(rng, t, p, np.arange(n), np.arange(n) + off, pos0, vel)
                for p, off in (("USA", 100), ("JPN", 200), ("KOR", 300))
            ]
        )
        outs.append(f.update(batch, t))
    assert len(outs[0]) == 3 * n  # every local track is in the picture from the start
    assert len(outs[1]) == n and len(outs[2]) == n
    # all first seen at T0: the founder is the smallest (partner, track_id): JPN
    assert np.array_equal(outs[2]["track_id"], [key("JPN", 200 + i) for i in range(n)])
    assert list(outs[2]["sources"]) == [
        f"JPN:{200 + i},KOR:{300 + i},USA:{100 + i}" for i in range(n)
    ]
    assert (outs[2]["partner"] == "").all()
    assert (outs[2]["n_updates"] == 3 * 18).all()  # summed over contributors
    # fused position close to truth, geodetic fields consistent
    truth = pos0 + vel * 8
    assert np.abs(outs[2]["pos_ecef_m"] - truth).max() < 300
    assert np.abs(outs[2]["alt_m"] - 9000).max() < 300


def test_contributor_dropout_join_and_founder_leaving_keep_the_ctn():
    rng = np.random.default_rng(2)
    pos0, vel = objects_on_grid(4, spacing_m=20_000)
    cfg = FusionConfig(max_age_s=9.0, associate_after=2)
    f = TrackFuser(cfg)
    obj = np.arange(4)
    seen = []
    for k in range(20):
        t = T0 + 2 * k
        parts = []
        if k < 8 or k >= 16:  # JPN (the founder) leaves at k=8 and returns with new ids at k=16
            parts.append(reports(rng, t, "JPN", obj, obj + (10 if k < 8 else 50), pos0, vel))
        if k < 12:  # USA stops at k=12
            parts.append(reports(rng, t, "USA", obj, obj + 20, pos0, vel))
        if k >= 4:  # KOR joins at k=4
            parts.append(reports(rng, t, "KOR", obj, obj + 30, pos0, vel))
        out = f.update(np.concatenate(parts), t)
        seen.append(out)
    founders = [key("JPN", 10 + i) for i in range(4)]
    for k in range(1, 20):
        assert sorted(seen[k]["track_id"]) == founders or k in (4, 16), k
        assert len(set(seen[k]["track_id"].tolist())) == len(seen[k])  # no duplicate CTN
    assert list(seen[6]["sources"]) == [f"JPN:{10 + i},KOR:{30 + i},USA:{20 + i}" for i in range(4)]
    # the founder JPN is gone (last report k=7, older than 9 s from k=12): the CTNs live on ...
    assert list(seen[15]["sources"]) == [f"KOR:{30 + i},USA:{20 + i}" for i in range(4)]
    # ... USA is gone too from k=16, and JPN's new tracks join the surviving CTNs
    assert list(seen[19]["sources"]) == [f"JPN:{50 + i},KOR:{30 + i}" for i in range(4)]


def test_founder_returning_with_the_same_id_never_collides():
    """A founder that aged out and comes back with the same track id cannot take its old CTN
    (still held): it gets generation 1 until it merges back into the older track."""
    rng = np.random.default_rng(3)
    pos0, vel = objects_on_grid(1)
    f = TrackFuser(FusionConfig(max_age_s=5.0, associate_after=2))
    ctns = []
    for k in range(12):
        t = T0 + 2 * k
        parts = [reports(rng, t, "USA", [0], [7], pos0, vel)]
        if k < 2 or k >= 6:
            parts.append(reports(rng, t, "JPN", [0], [1], pos0, vel))
        out = f.update(np.concatenate(parts), t)
        assert len(set(out["track_id"].tolist())) == len(out)
        ctns.append(sorted(out["track_id"].tolist()))
    k0 = key("JPN", 1)
    assert ctns[3] == [k0]  # JPN gone, USA carries JPN's CTN
    assert ctns[6] == [k0, k0 | (1 << 40)]  # JPN:1 back, generation 1
    assert decode_ctn(k0 | (1 << 40)) == ("JPN", 1, 1)
    assert ctns[11] == [k0]  # merged back, older CTN survives


def test_older_ctn_survives_a_merge():
    rng = np.random.default_rng(4)
    pos0, vel = objects_on_grid(1)
    f = TrackFuser(FusionConfig(associate_after=2))
    for k in range(5):
        t = T0 + 2 * k
        parts = [reports(rng, t, "USA", [0], [9], pos0, vel)]
        if k >= 2:  # JPN's track (smaller partner code) appears later
            parts.append(reports(rng, t, "JPN", [0], [1], pos0, vel))
        out = f.update(np.concatenate(parts), t)
    assert out["track_id"].tolist() == [key("USA", 9)]
    assert out["sources"].tolist() == ["JPN:1,USA:9"]


def _crossing_run(cfg, mode_s):
    """Objects A (ids 1) and B (ids 2) cross 300 m apart; USA's tracker swaps its two reports
    for two scans right after the crossing. Returns the members of each CTN per step."""
    rng = np.random.default_rng(5)
    pos0, vel = objects_on_grid(2, spacing_m=1.0)
    along = vel[0] / np.linalg.norm(vel[0])  # horizontal unit vector
    up = pos0[0] / np.linalg.norm(pos0[0])
    across = np.cross(up, along)
    vel = np.stack([200 * along, -200 * along])  # head-on, 300 m lateral offset, meet at k=10
    pos_t0 = np.stack([pos0[0] - 200 * 20 * along, pos0[0] + 200 * 20 * along + 300 * across])
    f = TrackFuser(cfg)
    history = []
    for k in range(21):
        t = T0 + 2 * k
        ms = [0xA0000A, 0xB0000B] if mode_s else None
        jpn = reports(rng, t, "JPN", [0, 1], [1, 2], pos_t0, vel, mode_s=ms)
        swap = k in (11, 12)  # crossing at k = 10
        # while swapped, USA's tracks keep their own Mode S addresses (the identity its tracker
        # holds) but report each other's positions
        usa = reports(rng, t, "USA", [1, 0] if swap else [0, 1], [1, 2], pos_t0, vel, mode_s=ms)
        f.update(np.concatenate([jpn, usa]), t)
        history.append(f.members())
    return history


def _mixed(history):
    return any(
        sorted(mem) in (sorted([("JPN", 1), ("USA", 2)]), sorted([("JPN", 2), ("USA", 1)]))
        for h in history
        for mem in h.values()
    )


def test_crossing_objects_are_not_swapped_with_hysteresis():
    hist = _crossing_run(FusionConfig(associate_after=2, dissociate_after=3), mode_s=False)
    assert not _mixed(hist)
    for h in hist[2:]:
        assert h[key("JPN", 1)] == [("JPN", 1), ("USA", 1)]
        assert h[key("JPN", 2)] == [("JPN", 2), ("USA", 2)]


def test_crossing_without_hysteresis_swaps_and_mode_s_prevents_it():
    no_hyst = FusionConfig(associate_after=1, dissociate_after=1)
    assert _mixed(_crossing_run(no_hyst, mode_s=False))
    hist = _crossing_run(no_hyst, mode_s=True)
    assert not _mixed(hist)
    for h in hist:
        assert h[key("JPN", 1)] == [("JPN", 1), ("USA", 1)]


def test_mode_s_match_overrides_gate_and_mismatch_forbids():
    rng = np.random.default_rng(6)
    pos0, vel = objects_on_grid(2, spacing_m=30_000)
    f = TrackFuser(FusionConfig(associate_after=1))
    t = T0
    far = reports(rng, t, "USA", [1], [5], pos0, vel, mode_s=[0x123456])  # 30 km away ...
    near = reports(rng, t, "JPN", [0], [5], pos0, vel, mode_s=[0x123456])  # ... same address
    same_place = reports(rng, t, "KOR", [0], [5], pos0, vel, mode_s=[0x654321])  # co-located
    out = f.update(np.concatenate([far, near, same_place]), t)
    assert sorted(out["sources"].tolist()) == ["JPN:5,USA:5", "KOR:5"]
    fused = out[out["sources"] == "JPN:5,USA:5"][0]
    assert fused["mode_s_address"] == 0x123456


def test_diverging_contributor_leaves_after_dissociate_after_and_majority_keeps_ctn():
    rng = np.random.default_rng(7)
    pos0, vel = objects_on_grid(2, spacing_m=20_000)
    f = TrackFuser(FusionConfig(associate_after=1, dissociate_after=3))
    members = []
    for k in range(10):
        t = T0 + 2 * k
        jpn_obj = [0] if k < 4 else [1]  # JPN's track (the founder) wanders to the other object
        parts = [
            reports(rng, t, "JPN", jpn_obj, [1], pos0, vel),
            reports(rng, t, "USA", [0], [2], pos0, vel),
            reports(rng, t, "KOR", [0], [3], pos0, vel),
        ]
        f.update(np.concatenate(parts), t)
        members.append(f.members())
    k0 = key("JPN", 1)
    assert members[5][k0] == [("JPN", 1), ("KOR", 3), ("USA", 2)]  # two failures: still in
    assert members[6][k0] == [("KOR", 3), ("USA", 2)]  # third: out; the majority keeps the CTN
    assert members[6][k0 | (1 << 40)] == [("JPN", 1)]  # JPN:1's own number is held: generation 1


def test_bad_rows_are_dropped_and_counted():
    rng = np.random.default_rng(8)
    pos0, vel = objects_on_grid(6)
    b = reports(rng, T0, "JPN", np.arange(6), np.arange(6), pos0, vel)
    b["pos_ecef_m"][0, 0] = np.nan
    b["partner"][1] = "J1"
    b["track_id"][2] = -4
    b["cov_ecef"][3] = -np.eye(6)
    b["cov_ecef"][4, 0, 1] += 5.0  # asymmetric
    f = TrackFuser()
    out = f.update(b, T0)
    assert out["sources"].tolist() == ["JPN:5"]
    assert f.dropped == {
        "non_finite_state": 1,
        "bad_partner": 1,
        "track_id_out_of_range": 1,
        "cov_not_symmetric_positive_definite": 2,
    }
    gone = b[5:6].copy()
    gone["status"] = records.TrackStatus.DELETED
    gone["time_s"] = T0 + 1
    assert len(f.update(gone, T0 + 1)) == 0
    with pytest.raises(InputError, match="time_s"):
        f.update(b[:0], T0)
    with pytest.raises(InputError, match="TRACK_DTYPE"):
        f.update(np.zeros(3), T0 + 2)


def test_out_of_order_rows_do_not_replace_newer_states():
    rng = np.random.default_rng(9)
    pos0, vel = objects_on_grid(1)
    f = TrackFuser()
    new = reports(rng, T0 + 4, "JPN", [0], [1], pos0, vel)
    f.update(new, T0 + 4)
    old = reports(rng, T0 + 2, "JPN", [0], [1], pos0, vel)
    out = f.update(old, T0 + 4)
    assert f.dropped["older_than_stored"] == 1
    np.testing.assert_array_equal(out["pos_ecef_m"], new["pos_ecef_m"])


def test_labels_identity_and_status_are_combined_by_fixed_rules():
    rng = np.random.default_rng(10)
    pos0, vel = objects_on_grid(1)
    parts = [
        reports(
            rng,
            T0,
            "USA",
            [0],
            [1],
            pos0,
            vel,
            label="L-USA",
            callsign=["ABC123"],
            mode_3a=[0o1200],
        ),
        reports(
            rng, T0, "JPN", [0], [1], pos0, vel, label="L-JPN", callsign=["XYZ9"], mode_3a=[0o1200]
        ),
        reports(
            rng, T0, "KOR", [0], [1], pos0, vel, label="L-KOR", callsign=[""], mode_3a=[0o4321]
        ),
    ]
    parts[0]["status"] = records.TrackStatus.COASTING
    parts[1]["status"] = records.TrackStatus.TENTATIVE
    parts[2]["status"] = records.TrackStatus.CONFIRMED
    parts[2]["model_prob"] = (0.4, 0.6)
    got = []

    def combine(labels):
        got.append(list(labels))
        return "+".join(labels)

    out = TrackFuser(FusionConfig(associate_after=1), combine_labels=combine).update(
        np.concatenate(parts), T0
    )
    assert got[-1] == ["L-JPN", "L-KOR", "L-USA"]  # contributor order (partner, track_id)
    r = out[0]
    assert r["label"] == "L-JPN+L-KOR+L-USA"
    assert r["mode_3a"] == 0o1200  # majority
    assert r["callsign"] == "XYZ9"  # tie between JPN and USA: first in contributor order
    assert r["status"] == records.TrackStatus.CONFIRMED
    np.testing.assert_allclose(r["model_prob"], [0.8, 0.2], rtol=1e-6)
    # default combiner: equal labels pass, different ones give ""
    out = TrackFuser(FusionConfig(associate_after=1)).update(np.concatenate(parts), T0)
    assert out[0]["label"] == ""

    def refuse(labels):
        raise ValueError("mixed policies")

    f = TrackFuser(FusionConfig(associate_after=1), combine_labels=refuse)
    assert len(f.update(np.concatenate(parts), T0)) == 0
    assert f.dropped["label_combine_failed"] == 1


def test_sources_are_truncated_with_a_plus():
    items = [("JPN", 1000000 + i) for i in range(10)]
    s = format_sources(items)
    assert len(s) <= 64 and s.endswith("+") and s.startswith("JPN:1000000,JPN:1000001")
    assert format_sources([("JPN", 12), ("USA", 7)]) == "JPN:12,USA:7"


@pytest.mark.parametrize("seed", range(3))
def test_formation_where_every_pair_gates_is_resolved_by_assignment(seed):
    """Pairs of objects 150 m apart, three partners with 30 m errors and a wide gate: wrong
    pairs pass the gate too, so clusters of six local tracks contend and only the assignment
    costs (d^2) keep the objects apart."""
    rng = np.random.default_rng(100 + seed)
    lead, vel = objects_on_grid(10, spacing_m=20_000, seed=seed)
    side = np.cross(lead, vel)
    side /= np.linalg.norm(side, axis=1)[:, None]
    pos0 = np.concatenate([lead, lead + 150.0 * side])
    vel = np.concatenate([vel, vel])
    f = TrackFuser(FusionConfig(associate_after=2, gate_chi2=200.0))
    for k in range(4):
        t = T0 + 2 * k
        batch = np.concatenate(
            [
                make_local_tracks(
                    pos0 + vel * (t - T0),
                    vel,
                    p,
                    ids,
                    t,
                    iso_cov(20, 30.0),
                    own_err=draw(rng, iso_cov(20, 30.0)),
                )
                for p, ids in (
                    ("JPN", np.arange(20)),
                    ("USA", 100 + np.arange(20)),
                    ("KOR", 200 + np.arange(20)[::-1]),
                )
            ]  # KOR numbers the other way
        )
        f.update(batch, t)
    groups = list(f.members().values())
    assert len(groups) == 20
    obj = {("JPN", i): i for i in range(20)} | {("USA", 100 + i): i for i in range(20)}
    obj |= {("KOR", 219 - i): i for i in range(20)}
    for mem in groups:
        assert len(mem) == 3
        assert len({obj[m] for m in mem}) == 1, mem


def test_a_fused_track_never_holds_two_mode_s_addresses():
    """JPN (address A), USA (none) and KOR (none) are fused; KOR's track then reports address B.
    KOR is linked to the fused track through USA, but must leave at once."""
    rng = np.random.default_rng(12)
    pos0, vel = objects_on_grid(1)
    f = TrackFuser(FusionConfig(associate_after=1, dissociate_after=5))
    for k in range(4):
        t = T0 + 2 * k
        kor = reports(rng, t, "KOR", [0], [3], pos0, vel, mode_s=[0xBBBBBB] if k >= 2 else None)
        parts = [
            reports(rng, t, "JPN", [0], [1], pos0, vel, mode_s=[0xAAAAAA]),
            reports(rng, t, "USA", [0], [2], pos0, vel),
            kor,
        ]
        out = f.update(np.concatenate(parts), t)
        if k < 2:
            assert out["sources"].tolist() == ["JPN:1,KOR:3,USA:2"]
    assert sorted(out["sources"].tolist()) == ["JPN:1,USA:2", "KOR:3"]
    assert sorted(out["mode_s_address"].tolist()) == [0xAAAAAA, 0xBBBBBB]
    assert f.members()[key("JPN", 1)] == [("JPN", 1), ("USA", 2)]


def test_wiring_with_siap_sharing_combine():
    """The coalition wiring: siap.sharing's combine (returns a Label) as the label combiner."""
    from siap.sharing.labels import combine

    rng = np.random.default_rng(13)
    pos0, vel = objects_on_grid(1)
    parts = [
        reports(rng, T0, "JPN", [0], [1], pos0, vel, label="SIAP//CONFIDENTIAL//REL TO JPN, USA"),
        reports(rng, T0, "USA", [0], [2], pos0, vel, label="SIAP//SECRET//REL TO AUS, JPN, USA"),
    ]
    f = TrackFuser(FusionConfig(associate_after=1), combine_labels=lambda ls: str(combine(ls)))
    out = f.update(np.concatenate(parts), T0)
    assert out["label"].tolist() == ["SIAP//SECRET//REL TO JPN, USA"]


def test_sensor_union_is_sorted_deduplicated_and_marks_truncation():
    from siap.fusion import format_sensor_union

    assert format_sensor_union([["USA-R1", "JPN-R1"], ["JPN-R1", "AUS-ADSB"]]) == "AUS-ADSB,JPN-R1,USA-R1"
    assert format_sensor_union([["A", "+"], []]) == "A"
    long = [[f"SENSOR-{i:03d}" for i in range(40)]]
    text = format_sensor_union(long, width=40)
    assert len(text) <= 40 and text.endswith(",+") and text.startswith("SENSOR-000,")


def test_covariance_check_agrees_with_eigvalsh_and_certifies_only_clear_cases():
    from siap.fusion.fuser import _check_covariances

    rng = np.random.default_rng(7)
    A = rng.normal(size=(400, 6, 6))
    C = A @ np.swapaxes(A, 1, 2)
    C[:100] *= np.logspace(-6, 8, 6)[None, :, None] * np.logspace(-6, 8, 6)[None, None, :]
    C[100:150] -= 1.05 * np.linalg.eigvalsh(C[100:150])[:, :1, None] * np.eye(6)  # indefinite
    C[150:200] = A[150:200, :, :1] @ A[150:200, :, :1].swapaxes(1, 2)  # rank one
    C[200:220, 0, 1] += 1e-3 * np.abs(C[200:220]).max(axis=(1, 2))  # not symmetric
    C = np.ascontiguousarray(C)
    asym = np.empty(len(C), bool)
    certain = np.empty(len(C), bool)
    _check_covariances(C, asym, certain)
    scale = np.abs(C).max(axis=(1, 2))
    ref_asym = np.abs(C - np.swapaxes(C, 1, 2)).max(axis=(1, 2)) > 1e-9 * scale
    np.testing.assert_array_equal(asym, ref_asym)
    assert asym[200:220].all() and not asym[:200].any()
    eig_min = np.linalg.eigvalsh(0.5 * (C + np.swapaxes(C, 1, 2)))[:, 0]
    assert (eig_min[certain] > 0).all()  # a certificate never contradicts the eigenvalues
    assert not certain[100:220].any()
    assert certain[200:].sum() + certain[:100].sum() > 150  # the clear cases are certified
