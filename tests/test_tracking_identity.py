"""One aircraft, one track: Mode S identity, re-seeding, merges (same address and track
coalescence), and what must stay apart (formations with different addresses, conspicuity
squawks)."""

from __future__ import annotations

import numpy as np

from siap.geo import LocalFrame
from siap.tracking import Tracker, TrackerConfig
from siap.tracking.synthetic import adsb_plots, radar_3d_plots

FRAME = LocalFrame(35.0, 135.0, 0.0)
T0 = 1_700_000_000.0
CFG = dict(origin_lat_deg=35.0, origin_lon_deg=135.0)
ADDR = 0xABC123


def _line(p0, v, offset=(0.0, 0.0, 0.0)):
    """Constant-velocity trajectories from (n, 3) starts and velocities, shifted by ``offset``."""
    p0 = np.atleast_2d(np.asarray(p0, float)) + np.asarray(offset, float)
    v = np.atleast_2d(np.asarray(v, float))

    def f(idx, t):
        return p0[idx] + v[idx] * (t - T0)[:, None], v[idx].copy()

    return f


def _radar(traj, n, rng, *, t0=T0, n_scans=20, site=(0.0, 0.0, 20.0), sensor_id="R3D", **kw):
    return radar_3d_plots(
        traj, n, FRAME, list(site), t0=t0, n_scans=n_scans, scan_s=4.0, sigma_range_m=40.0,
        sigma_az_rad=1.5e-3, sigma_el_rad=2e-3, pd=1.0, clutter_per_scan=0, rng=rng,
        sensor_id=sensor_id, **kw,
    )  # fmt: skip


def _adsb(traj, n, rng, duration_s, mode_s):
    return adsb_plots(
        traj, np.arange(n), FRAME, t0=T0, duration_s=duration_s, period_s=1.0, sigma_h_m=15.0,
        sigma_v_m=20.0, rng=rng, mode_s=np.asarray(mode_s),
    )  # fmt: skip


def _run(plots, t_end, step=5.0, **cfg):
    """Process time-sorted plots, snapshot every ``step`` s; returns the tracker and the
    snapshots by time."""
    trk = Tracker(TrackerConfig(**CFG, **cfg))
    plots = plots[np.argsort(plots["time_s"], kind="stable")]
    snaps = {}
    for t in np.arange(T0 + step, t_end, step):
        trk.process(plots[(plots["time_s"] > t - step) & (plots["time_s"] <= t)])
        trk.advance(t)
        snaps[float(t)] = trk.snapshot(float(t))
    return trk, snaps


def test_jump_in_reported_position_reseeds_the_same_track_instead_of_a_second_one():
    rng = np.random.default_rng(1)
    traj = _line([[20_000.0, 0.0, 8000.0]], [[0.0, 200.0, 0.0]])
    plots = _adsb(traj, 1, rng, 80.0, [ADDR])
    glitch = (plots["time_s"] > T0 + 30) & (plots["time_s"] < T0 + 45)
    plots["alt_m"][glitch] += 3000.0  # an altitude jump the track cannot follow
    trk, snaps = _run(plots, T0 + 80)
    ids = np.unique(np.concatenate([s["track_id"] for s in snaps.values()]))
    assert len(ids) == 1
    st = trk.stats
    assert st["tracks_initiated"] == 1
    assert st["tracks_reseeded"] >= 2  # into the jump and back out of it
    assert st["plots_own_address_outside_gate"] >= 2 * (TrackerConfig().mode_s_reseed_after - 1)
    # the track follows the reports: on the jump during it, back on the aircraft after it
    inside = snaps[T0 + 40.0]
    assert abs(inside["alt_m"][0] - 11_000.0) < 200.0
    after = snaps[T0 + 75.0]
    assert abs(after["alt_m"][0] - 8000.0) < 200.0


def test_two_tracks_on_one_aircraft_merge_under_the_older_number_when_the_address_arrives():
    rng = np.random.default_rng(2)
    traj = _line([[30_000.0, 10_000.0, 7000.0]], [[-150.0, 50.0, 0.0]])
    # a radar 2 km off (uncorrected bias) makes its own track; from scan 10 on it also reads
    # the aircraft's Mode S address, so its track takes the address of the ADS-B track
    off = _line([[30_000.0, 10_000.0, 7000.0]], [[-150.0, 50.0, 0.0]], offset=(2000.0, 0, 0))
    r1 = _radar(off, 1, rng, n_scans=10)
    r2 = _radar(off, 1, rng, t0=T0 + 40.0, n_scans=10, mode_s=np.array([ADDR]),
                plot_id_start=100)  # fmt: skip
    plots = np.concatenate([r1, r2, _adsb(traj, 1, rng, 80.0, [ADDR])])
    trk, snaps = _run(plots, T0 + 80)
    before = snaps[T0 + 35.0]
    assert len(before) == 2  # the bias keeps them apart: two tracks on one aircraft
    first_ids = sorted(before["track_id"].tolist())
    m = trk.merges
    assert len(m) == 1 and m["reason"][0] == "mode_s"
    assert m["kept_id"][0] == first_ids[0] and m["merged_id"][0] == first_ids[1]
    after = snaps[T0 + 75.0]
    assert after["track_id"].tolist() == [first_ids[0]]
    assert after["mode_s_address"].tolist() == [ADDR]
    assert "ADSB" in after["sensors"][0] and "R3D" in after["sensors"][0]
    assert trk.stats["tracks_merged"] == 1


def test_two_tracks_on_one_aircraft_without_address_coalesce():
    rng = np.random.default_rng(3)
    p0, v = [[25_000.0, -5_000.0, 6000.0]], [[0.0, 180.0, 0.0]]
    traj = _line(p0, v)

    def drifting(idx, t):  # radar B's bias: 1.5 km when it starts, registered away over 60 s
        p, vel = traj(idx, t)
        p[:, 1] += 1500.0 * np.clip(1.0 - (t - T0 - 20.0) / 60.0, 0.0, 1.0)
        return p, vel

    a = _radar(traj, 1, rng, n_scans=50)
    b = _radar(drifting, 1, rng, site=(5000.0, 0.0, 20.0), sensor_id="R3D-B", n_scans=45,
               t0=T0 + 21.0, plot_id_start=1000)  # fmt: skip
    plots = np.concatenate([a, b])
    trk, snaps = _run(plots, T0 + 200)
    assert len(snaps[T0 + 45.0]) == 2  # two tracks on one aircraft, each fed by one radar
    older = int(snaps[T0 + 45.0]["track_id"].min())
    m = trk.merges
    assert len(m) == 1 and m["reason"][0] == "coalescence" and m["kept_id"][0] == older
    assert m["time_s"][0] < T0 + 105.0
    last = snaps[T0 + 195.0]
    assert last["track_id"].tolist() == [older]
    assert set(last["sensors"][0].split(",")) == {"R3D", "R3D-B"}
    # without the coalescence test the second track lives on, fed by radar B
    _, snaps_off = _run(plots, T0 + 200, coalescence_check_s=None)
    assert len(snaps_off[T0 + 125.0]) == 2


def test_formation_300_m_apart_with_different_addresses_stays_two_tracks():
    rng = np.random.default_rng(4)
    traj = _line([[30_000.0, 0.0, 9000.0], [30_300.0, 0.0, 9000.0]], [[0.0, 220.0, 0.0]] * 2)
    addr = np.array([0x111111, 0x222222])
    # primary radar plots (no address) can go to either track; ADS-B carries the addresses
    plots = np.concatenate([_radar(traj, 2, rng, n_scans=30), _adsb(traj, 2, rng, 120.0, addr)])
    trk, snaps = _run(plots, T0 + 120)
    for t in (T0 + 30.0, T0 + 60.0, T0 + 115.0):
        assert sorted(snaps[t]["mode_s_address"].tolist()) == addr.tolist()
    assert len(trk.merges) == 0
    assert trk.stats["tracks_merged"] == 0


def test_a_conspicuity_squawk_does_not_merge_different_aircraft():
    rng = np.random.default_rng(5)
    # two VFR aircraft squawking 7000, no Mode S, flying side by side 1.2 km apart
    traj = _line([[20_000.0, 0.0, 2000.0], [21_200.0, 0.0, 2000.0]], [[0.0, 60.0, 0.0]] * 2)
    plots = _radar(traj, 2, rng, n_scans=30)
    plots["mode_3a"] = 0o7000
    trk, snaps = _run(plots, T0 + 120)
    for t in (T0 + 40.0, T0 + 115.0):
        assert len(snaps[t]) == 2
        assert snaps[t]["mode_3a"].tolist() == [0o7000, 0o7000]
    assert len(trk.merges) == 0
    assert trk.stats["coalescence_checks"] > 0  # they were close enough to be tested
