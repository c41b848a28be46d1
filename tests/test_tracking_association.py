"""Association in siap.tracking: k-d tree gating vs brute force, optimal assignment, crossing
targets, Mode S evidence, multi-sensor fusion into one track, 2D radar with Mode C."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from siap.geo import LocalFrame, ecef_to_polar
from siap.records import MeasurementKind, empty_plots
from siap.tracking import Tracker, TrackerConfig, track
from siap.tracking.measurements import PreparedPlots
from siap.tracking.synthetic import adsb_plots, cv_targets, radar_3d_plots, tabulated

FRAME = LocalFrame(35.0, 135.0, 0.0)
T0 = 1_700_000_000.0
FAST = dict(tentative_max_coast_s=3.0, coasting_after_s=3.0, delete_after_s=6.0)


def test_kdtree_gating_finds_exactly_the_brute_force_gated_pairs():
    rng = np.random.default_rng(7)
    n = 300
    traj = cv_targets(n, rng, half_width_m=30_000.0, t0=T0)
    plots = radar_3d_plots(
        traj,
        n,
        FRAME,
        [0, 0, 20],
        t0=T0,
        n_scans=6,
        scan_s=1.0,
        sigma_range_m=50,
        sigma_az_rad=2e-3,
        sigma_el_rad=2e-3,
        pd=0.9,
        clutter_per_scan=30,
        rng=rng,
        clutter_half_width_m=30_000.0,
    )
    trk = Tracker(TrackerConfig(**FAST))
    trk.process(plots[plots["time_s"] < T0 + 5.0])
    trk.advance(T0 + 5.0)
    frame = plots[(plots["time_s"] >= T0 + 5.0) & (plots["time_s"] < T0 + 5.5)]
    assert trk.n > n and len(frame) > 50
    pp = PreparedPlots.from_array(trk.geo.prepare(frame, trk._sensor_indices(frame["sensor_id"])))
    m = len(frame)
    trk._build_index(T0 + 5.25)
    ti, pj = trk._candidates(pp, np.arange(m))
    ok, _ = trk._gate(ti, pj, pp, trk._pairs(ti, pj, pp))
    fast = set(zip(ti[ok].tolist(), pj[ok].tolist(), strict=True))
    bt, bp = np.meshgrid(np.arange(trk.n), np.arange(m), indexing="ij")
    bt, bp = bt.ravel(), bp.ravel()
    okb, _ = trk._gate(bt, bp, pp, trk._pairs(bt, bp, pp))
    brute = set(zip(bt[okb].tolist(), bp[okb].tolist(), strict=True))
    assert len(brute) > 50
    assert fast == brute
    # The candidate set is small: the tree does not fall back to all pairs.
    assert len(ti) < 0.05 * trk.n * m
    # After updates by part of the plots the index is stale; it must still find every pair.
    half = m // 2
    trk._frame(pp, 0, half)
    rest = np.arange(half, m)
    ti, pj = trk._candidates(pp, rest)
    ok, _ = trk._gate(ti, rest[pj], pp, trk._pairs(ti, rest[pj], pp))
    fast = set(zip(ti[ok].tolist(), pj[ok].tolist(), strict=True))
    bt, bp = np.meshgrid(np.arange(trk.n), np.arange(len(rest)), indexing="ij")
    bt, bp = bt.ravel(), bp.ravel()
    okb, _ = trk._gate(bt, rest[bp], pp, trk._pairs(bt, rest[bp], pp))
    assert fast == set(zip(bt[okb].tolist(), bp[okb].tolist(), strict=True))


def _brute_best(ti, pj, cost):
    """Maximum-cardinality, then minimum-cost matching by enumeration."""
    best = (0, 0.0, ())
    k = len(ti)
    for r in range(k, 0, -1):
        for combo in itertools.combinations(range(k), r):
            if len({ti[c] for c in combo}) < r or len({pj[c] for c in combo}) < r:
                continue
            c = sum(cost[i] for i in combo)
            if r > best[0] or (r == best[0] and c < best[1] - 1e-12):
                best = (r, c, combo)
        if best[0] == r:
            break
    return best


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_assignment_is_globally_optimal_per_cluster(data):
    nt = data.draw(st.integers(1, 4))
    npl = data.draw(st.integers(1, 4))
    pairs = data.draw(
        st.lists(
            st.tuples(st.integers(0, nt - 1), st.integers(0, npl - 1)),
            min_size=1,
            max_size=nt * npl,
            unique=True,
        )
    )
    cost = np.array(data.draw(st.lists(st.floats(0, 20), min_size=len(pairs), max_size=len(pairs))))
    ti = np.array([p[0] for p in pairs])
    pj = np.array([p[1] for p in pairs])
    chosen = Tracker._assign(ti, pj, cost, npl)
    assert len(set(ti[chosen])) == len(chosen) and len(set(pj[chosen])) == len(chosen)
    r, c, _ = _brute_best(ti.tolist(), pj.tolist(), cost.tolist())
    assert len(chosen) == r
    assert abs(cost[chosen].sum() - c) < 1e-9


def _two_targets(angle_deg: float, speed: float = 200.0, dur: float = 90.0, sep_alt: float = 0.0):
    """Two targets crossing at the origin-ish point (0, 20 km) at t = dur/2."""
    t = np.arange(0.0, dur + 1.0, 1.0)
    tc = dur / 2
    half = np.radians(angle_deg) / 2
    vels = [np.array([speed * np.sin(h), speed * np.cos(h), 0.0]) for h in (-half, half)]
    pos = np.stack(
        [
            [np.array([0.0, 20_000.0, 8000.0 + i * sep_alt]) + v * (tt - tc) for tt in t]
            for i, v in enumerate(vels)
        ]
    )
    vel = np.stack([[v for _ in t] for v in vels])
    return t, pos, vel


def _nearest_truth(tracks, traj, n):
    out = np.empty(len(tracks), int)
    for i, row in enumerate(tracks):
        p, _ = traj(np.arange(n), np.full(n, row["time_s"]))
        pe = FRAME.enu_to_ecef(p)
        out[i] = np.linalg.norm(pe - row["pos_ecef_m"], axis=1).argmin()
    return out


def test_crossing_targets_keep_their_tracks():
    t, pos, vel = _two_targets(60.0)
    traj = tabulated(t + T0, pos, vel)
    rng = np.random.default_rng(1)
    plots = radar_3d_plots(
        traj,
        2,
        FRAME,
        [0, 0, 20],
        t0=T0,
        n_scans=88,
        scan_s=1.0,
        sigma_range_m=40,
        sigma_az_rad=1e-3,
        sigma_el_rad=1e-3,
        pd=1.0,
        clutter_per_scan=0,
        rng=rng,
    )
    out_t = T0 + np.arange(10, 87) + 0.999
    tracks = track(plots, TrackerConfig(**FAST), out_t)
    assert len(np.unique(tracks["track_id"])) == 2
    apart = np.abs(tracks["time_s"] - (T0 + 45.0)) > 5.0  # truths > 1 km apart
    j = _nearest_truth(tracks[apart], traj, 2)
    for tid in np.unique(tracks["track_id"]):
        assert len(np.unique(j[tracks["track_id"][apart] == tid])) == 1


def test_mode_s_evidence_prevents_a_swap():
    """Two aircraft converge at a shallow angle at the same altitude (closest approach ~0 m):
    with Mode S on the plots each track keeps its address and follows its own aircraft."""
    t, pos, vel = _two_targets(6.0)
    traj = tabulated(t + T0, pos, vel)
    addr = np.array([0xABC001, 0xABC002])
    for seed in range(3):
        rng = np.random.default_rng(seed)
        plots = radar_3d_plots(
            traj,
            2,
            FRAME,
            [0, 0, 20],
            t0=T0,
            n_scans=88,
            scan_s=1.0,
            sigma_range_m=60,
            sigma_az_rad=3e-3,
            sigma_el_rad=3e-3,
            pd=1.0,
            clutter_per_scan=0,
            rng=rng,
            mode_s=addr,
        )
        out_t = T0 + np.arange(10, 87) + 0.999
        tracks = track(plots, TrackerConfig(**FAST), out_t)
        assert len(np.unique(tracks["track_id"])) == 2
        assert set(tracks["mode_s_address"].tolist()) == set(addr.tolist())
        late = tracks["time_s"] > T0 + 60  # well after the crossing
        j = _nearest_truth(tracks[late], traj, 2)
        np.testing.assert_array_equal(addr[j], tracks["mode_s_address"][late])


def test_mode_s_mismatch_forbids_association():
    """A plot whose Mode S address differs from the track's never updates it, even dead centre."""
    traj = tabulated(
        T0 + np.array([0.0, 100.0]),
        np.array([[[0, 20_000, 8000], [0, 40_000, 8000.0]]]),
        np.array([[[0, 200, 0], [0, 200, 0.0]]]),
    )
    rng = np.random.default_rng(2)
    plots = radar_3d_plots(
        traj,
        1,
        FRAME,
        [0, 0, 20],
        t0=T0,
        n_scans=20,
        scan_s=1.0,
        sigma_range_m=30,
        sigma_az_rad=1e-3,
        sigma_el_rad=1e-3,
        pd=1.0,
        clutter_per_scan=0,
        rng=rng,
        mode_s=np.array([0x111111]),
    )
    plots["mode_s_address"][plots["time_s"] >= T0 + 10] = 0x222222  # a different aircraft from t=10
    # (coverage rules off: the old track is not seen after t=10 and would rightly be ended
    # three looks later, before the output time)
    tracks = track(plots, TrackerConfig(**FAST, coverage_management=False), [T0 + 13.5])
    assert sorted(tracks["mode_s_address"].tolist()) == [0x111111, 0x222222]
    old = tracks[tracks["mode_s_address"] == 0x111111][0]
    n_old = int((plots["mode_s_address"] == 0x111111).sum())
    assert n_old >= 9
    assert old["n_updates"] == n_old


def test_radar_and_adsb_fuse_into_one_track_per_aircraft():
    rng = np.random.default_rng(4)
    n = 20
    traj = cv_targets(n, rng, half_width_m=40_000.0, t0=T0)
    addr = np.arange(n) + 0x400000
    radar = radar_3d_plots(
        traj,
        n,
        FRAME,
        [0, 0, 20],
        t0=T0,
        n_scans=40,
        scan_s=2.0,
        sigma_range_m=50,
        sigma_az_rad=1.5e-3,
        sigma_el_rad=1.5e-3,
        pd=0.9,
        clutter_per_scan=3,
        rng=rng,
        clutter_half_width_m=40_000.0,
    )
    adsb = adsb_plots(
        traj,
        np.arange(0, n, 2),
        FRAME,
        t0=T0,
        duration_s=80.0,
        period_s=1.0,
        sigma_h_m=15,
        sigma_v_m=30,
        rng=rng,
        mode_s=addr,
    )
    plots = np.concatenate([radar, adsb])
    cfg = TrackerConfig(tentative_max_coast_s=5.0, coasting_after_s=5.0, delete_after_s=10.0)
    tracks = track(plots, cfg, [T0 + 79.0])
    assert len(tracks) == n
    j = _nearest_truth(tracks, traj, n)
    assert sorted(j.tolist()) == list(range(n))
    both = tracks[np.isin(j, np.arange(0, n, 2))]
    assert all(set(s.split(",")) == {"ADSB", "R3D"} for s in both["sources"])
    assert all(s == "ADSB,R3D" for s in both["sensors"])  # sorted provenance
    np.testing.assert_array_equal(np.sort(both["mode_s_address"]), addr[0::2])
    p, _ = traj(j, tracks["time_s"])
    err = np.linalg.norm(FRAME.enu_to_ecef(p) - tracks["pos_ecef_m"], axis=1)
    assert np.median(err[np.isin(j, np.arange(0, n, 2))]) < 30.0  # ADS-B-aided tracks
    assert np.median(err) < 80.0


def _radar2d_plots(traj, n_scans, rng, with_mode_c: bool, site_enu=(0.0, 0.0, 20.0)):
    site_ecef = FRAME.enu_to_ecef(np.array(site_enu))[0]
    from siap.geo import ecef_to_geodetic

    slat, slon, salt = (float(a[0]) for a in ecef_to_geodetic(site_ecef))
    t = T0 + np.arange(n_scans) * 4.0
    p, _ = traj(np.zeros(n_scans, int), t)
    ecef = FRAME.enu_to_ecef(p)
    r, az, _ = ecef_to_polar(ecef, slat, slon, salt)
    _, _, alt = ecef_to_geodetic(ecef)
    pl = empty_plots(n_scans)
    pl["time_s"] = t
    pl["plot_id"] = np.arange(n_scans)
    pl["sensor_id"] = "R2D"
    pl["kind"] = int(MeasurementKind.RADAR_2D)
    pl["sensor_lat_deg"], pl["sensor_lon_deg"], pl["sensor_alt_m"] = slat, slon, salt
    pl["range_m"] = r + rng.normal(0, 60, n_scans)
    pl["azimuth_rad"] = np.mod(az + rng.normal(0, 1.5e-3, n_scans), 2 * np.pi)
    cov = np.diag([60.0**2, 1.5e-3**2, np.inf])
    if with_mode_c:
        pl["alt_m"] = alt + rng.normal(0, 15, n_scans)
        cov[2, 2] = 15.0**2
    pl["cov"] = cov
    return pl, alt


def test_radar_2d_with_mode_c_estimates_altitude():
    traj = tabulated(
        T0 + np.array([0.0, 500.0]),
        np.array([[[-20_000, 60_000, 9000], [80_000, 60_000, 9000.0]]]),
        np.array([[[200, 0, 0], [200, 0, 0.0]]]),
    )
    rng = np.random.default_rng(9)
    plots, alt = _radar2d_plots(traj, 60, rng, True)
    out = track(plots, TrackerConfig(), [plots["time_s"][-1]])
    assert len(out) == 1
    assert abs(out["alt_m"][0] - alt[-1]) < 40.0
    p, _ = traj(np.zeros(1, int), out["time_s"])
    assert np.linalg.norm(FRAME.enu_to_ecef(p)[0] - out["pos_ecef_m"][0]) < 250.0
    # Without Mode C the horizontal track still forms; altitude stays uncertain.
    plots2, _ = _radar2d_plots(traj, 60, np.random.default_rng(9), False)
    out2 = track(plots2, TrackerConfig(), [plots2["time_s"][-1]])
    assert len(out2) == 1
    assert out2["cov_ecef"][0].trace() > out["cov_ecef"][0].trace()


def test_two_radars_in_the_same_frame_give_one_track_per_target():
    """Two nearby radars scanning in phase see most targets in the same frame, from the first
    scan on (new targets seen twice in one frame): merged and sensor-by-sensor association both
    end with exactly one track per target."""
    rng = np.random.default_rng(12)
    n = 25
    traj = cv_targets(n, rng, half_width_m=30_000.0, t0=T0)
    a = radar_3d_plots(
        traj,
        n,
        FRAME,
        [-40_000, 0, 20],
        t0=T0,
        n_scans=15,
        scan_s=2.0,
        sigma_range_m=40,
        sigma_az_rad=1e-3,
        sigma_el_rad=1e-3,
        pd=0.95,
        clutter_per_scan=4,
        rng=rng,
        clutter_half_width_m=30_000.0,
        sensor_id="RA",
    )
    b = radar_3d_plots(
        traj,
        n,
        FRAME,
        [-38_000, 3_000, 20],
        t0=T0 + 0.05,
        n_scans=15,
        scan_s=2.0,
        sigma_range_m=60,
        sigma_az_rad=1.5e-3,
        sigma_el_rad=1.5e-3,
        pd=0.95,
        clutter_per_scan=4,
        rng=rng,
        clutter_half_width_m=30_000.0,
        sensor_id="RB",
        plot_id_start=100_000,
    )
    plots = np.concatenate([a, b])
    # Nearby sites: B sees each target within a fraction of a second of A (same frame mostly).
    da = {
        int(t): float(x)
        for t, x in zip(a["truth_id"][:40], a["time_s"][:40], strict=True)
        if t >= 0
    }
    db = {
        int(t): float(x)
        for t, x in zip(b["truth_id"][:40], b["time_s"][:40], strict=True)
        if t >= 0
    }
    common = set(da) & set(db)
    assert np.median([abs(da[k] - db[k]) for k in common]) < 0.2
    for merge in (True, False):
        cfg = TrackerConfig(
            merge_sensors=merge, tentative_max_coast_s=5.0, coasting_after_s=5.0, delete_after_s=9.0
        )
        tracks = track(plots, cfg, [T0 + 29.0])
        j = _nearest_truth(tracks, traj, n)
        assert len(tracks) == n, (merge, len(tracks))
        assert sorted(j.tolist()) == list(range(n))
        assert all(set(s.split(",")) == {"RA", "RB"} for s in tracks["sources"])


def test_assignment_per_component_path_matches_one_global_assignment():
    """Many ambiguous clusters (too many for one matrix): the per-component path gives the same
    number of pairs and total cost as one global linear_sum_assignment."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(0)
    ti, pj = [], []
    for c in range(250):  # 250 clusters of 2 tracks x 2 plots, some pairs missing
        for a in range(2):
            for b in range(2):
                if rng.random() < 0.85:
                    ti.append(2 * c + a)
                    pj.append(2 * c + b)
    ti, pj = np.array(ti), np.array(pj)
    cost = rng.uniform(0, 20, len(ti))
    chosen = Tracker._assign(ti, pj, cost, 500)
    C = np.full((500, 500), 1e9)
    C[ti, pj] = cost
    r, c = linear_sum_assignment(C)
    good = C[r, c] < 5e8
    assert len(chosen) == good.sum()
    assert abs(cost[chosen].sum() - C[r, c][good].sum()) < 1e-6
    assert len(set(ti[chosen])) == len(chosen) == len(set(pj[chosen]))
