"""The streaming runtime: clocks, partner schedules, a stopped partner, sinks, seek."""

from __future__ import annotations

import threading
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

import siap
from siap import records
from siap.picture import Picture
from siap.runtime import ArraySource, PictureRecorder, ReplayClock, Runtime, VirtualClock
from siap.runtime.partner import UpdateSchedule
from siap.sharing.policy import load_policy

DATA = Path(__file__).parent / "data"
SCENARIO = DATA / "coalition_small.yaml"
POLICY = DATA / "coalition_small_policy.yaml"


@lru_cache(maxsize=1)
def _sim():
    sc = siap.load_scenario(SCENARIO)
    return sc, siap.simulate(sc)


def _runtime(clock=None, **kwargs) -> Runtime:
    sc, sim = _sim()
    kwargs.setdefault("registration", False)
    return Runtime.from_scenario(sc, load_policy(POLICY), clock=clock or VirtualClock(), simulation=sim, **kwargs)


def _sources(picture: Picture) -> set[str]:
    """The partners contributing to a picture's tracks."""
    return {item.split(":")[0] for s in picture.tracks["sources"].tolist() for item in s.split(",") if item}


def _bytes(pictures: list[Picture]) -> list[tuple[float, bytes]]:
    return [(p.time_s, np.ascontiguousarray(p.tracks).tobytes()) for p in pictures]


@pytest.mark.slow
def test_virtual_clock_runs_are_identical():
    runs = []
    for _ in range(2):
        rt = _runtime()
        rec = rt.add_sink(PictureRecorder())
        result = rt.run(until_s=rt.start_s + 60)
        runs.append((rec, result))
    (a, ra), (b, rb) = runs
    assert a.pictures.keys() == b.pictures.keys() and len(a.pictures) == 6
    for key in a.pictures:
        assert _bytes(a.pictures[key]) == _bytes(b.pictures[key]), key
    assert ra.messages == rb.messages and ra.messages["accepted"] > 0
    assert sum(len(p) for p in a.pictures[("AUS", "coalition")]) > 0


def test_without_own_pictures_the_coalition_pictures_are_the_same():
    recs = []
    for own in (True, False):
        rt = _runtime(own_pictures=own)
        recs.append(rt.add_sink(PictureRecorder()))
        rt.run(until_s=rt.start_s + 20)
    with_own, without = recs
    assert {k for k in with_own.pictures if k[1] == "own"} and not {k for k in without.pictures if k[1] == "own"}
    coal = [k for k in with_own.pictures if k[1] == "coalition"]
    assert coal and sorted(coal) == sorted(without.pictures)
    for key in coal:
        assert _bytes(with_own.pictures[key]) == _bytes(without.pictures[key]), key
    assert sum(len(p) for p in without.pictures[("AUS", "coalition")]) > 0


def test_partners_update_on_their_own_periods():
    sc, _ = _sim()
    rt = _runtime(update_period_s={"JPN": 1.0, "USA": 2.0, "AUS": 5.0})
    rec = rt.add_sink(PictureRecorder())
    result = rt.run()
    for partner, period in (("JPN", 1.0), ("USA", 2.0), ("AUS", 5.0)):
        times = np.array([p.time_s for p in rec.pictures[(partner, "coalition")]])
        np.testing.assert_allclose(np.diff(times), period)
        assert times[0] == sc.start_time_s + period
        assert result.updates[partner] == len(times) == int(sc.duration_s // period)
    # AUS, updating every 5 s, still fuses what JPN and USA published in between
    assert {"JPN", "USA"} <= set().union(*(_sources(p) for p in rec.pictures[("AUS", "coalition")]))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["paused", "silent"])
def test_a_stopped_partner_does_not_stall_the_others_and_comes_back(how):
    """JPN's node is paused (or its sensors fall silent) from t0+25 to t0+90: USA's and AUS's
    pictures keep updating every second, JPN's contributions age out of them (a paused node's
    after the fusers' max age; a silent one's once its tracker has deleted its coasting tracks),
    and come back after JPN resumes."""
    from siap.fusion import FusionConfig
    from siap.tracking import TrackerConfig

    sc, sim = _sim()
    t0 = sc.start_time_s
    down, up = t0 + 25.0, t0 + 90.0
    gone_after = FusionConfig().max_age_s + 2.0
    if how == "silent":
        gone_after += TrackerConfig(origin_lat_deg=0.0, origin_lon_deg=0.0).delete_after_s
    assert down + gone_after < up
    plots = sim.plots
    if how == "silent":
        jpn = np.char.startswith(plots["sensor_id"], "JPN")
        plots = plots[~(jpn & (plots["time_s"] > down) & (plots["time_s"] <= up))]
    policy = load_policy(POLICY)
    from siap.pipeline import tracker_config_for

    rt = Runtime(policy, [ArraySource(plots)], sensor_ids=[s.id for s in sim.sensors],
                 tracker_config=tracker_config_for(sc), start_s=t0, end_s=sc.end_time_s)
    rec = rt.add_sink(PictureRecorder())
    rt.run(until_s=down)
    if how == "paused":
        rt.pause_partner("JPN")
    rt.run(until_s=up)
    if how == "paused":
        rt.resume_partner("JPN")
    result = rt.run()

    def during(partner, lo, hi):
        return [p for p in rec.pictures[(partner, "coalition")] if lo < p.time_s <= hi]

    for other in ("USA", "AUS"):
        pics = during(other, down, up)
        assert [p.time_s for p in pics] == [down + k for k in range(1, 66)], other  # never stalled
        assert "JPN" in set().union(*(_sources(p) for p in during(other, down - 10, down))), other
        late = during(other, down + gone_after, up)
        assert late and all("JPN" not in _sources(p) for p in late), other
        assert all(len(p) > 0 for p in late), other  # the others' tracks are still there
        back = during(other, up + 5, up + 30)
        assert "JPN" in set().union(*(_sources(p) for p in back)), other
    jpn = [p.time_s for p in rec.pictures[("JPN", "coalition")]]
    if how == "paused":
        assert not any(down < t <= up for t in jpn)
        assert result.plots["dropped_paused"] > 0
    else:
        assert any(down < t <= up for t in jpn)
    assert any(len(p) for p in during("JPN", up + 5, up + 30))


class Raising:
    name = "raising"

    def on_picture(self, picture):
        raise RuntimeError("this sink is broken")


class Blocking:
    """Blocks on its first picture until released."""

    name = "blocking"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.seen = 0

    def on_picture(self, picture):
        self.seen += 1
        self.release.wait()


def test_a_raising_or_blocking_sink_does_not_stop_the_loop():
    rt = _runtime()
    rt.add_sink(Raising())
    blocking = Blocking()
    queued = rt.add_sink(blocking, queue_size=4)
    rec = rt.add_sink(PictureRecorder())
    result = rt.run(until_s=rt.start_s + 60)
    n = sum(len(v) for v in rec.pictures.values())
    assert n == 2 * 3 * 60  # coalition + own, three partners, every second of a minute
    assert result.sink_errors == {"raising": n}
    assert blocking.seen == 1 and queued.dropped == n - 1 - 4  # stuck on the first, 4 queued
    blocking.release.set()
    assert queued.flush(5.0) and blocking.seen == 1 + 4


def test_replay_clock_honours_speed_pause_and_seek():
    clock = ReplayClock(speed=10.0)
    clock.start(1000.0)
    w0, c0 = time.monotonic(), clock.now()
    time.sleep(0.2)
    w1, c1 = time.monotonic(), clock.now()
    assert c1 - c0 == pytest.approx(10.0 * (w1 - w0), abs=0.05)
    clock.pause()
    frozen = clock.now()
    time.sleep(0.05)
    assert clock.now() == frozen and clock.paused
    clock.resume()
    clock.set_speed(2.0)
    w0, c0 = time.monotonic(), clock.now()
    time.sleep(0.1)
    w1, c1 = time.monotonic(), clock.now()
    assert c0 >= frozen and c1 - c0 == pytest.approx(2.0 * (w1 - w0), abs=0.02)
    clock.seek(5000.0)
    assert 5000.0 <= clock.now() < 5001.0
    with pytest.raises(ValueError):
        clock.set_speed(0)


class Latest:
    def __init__(self) -> None:
        self.pictures: list[Picture] = []
        self.seeks: list[float] = []

    def on_picture(self, picture):
        self.pictures.append(picture)

    def on_seek(self, time_s):
        self.seeks.append(time_s)


def _wait(cond, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.mark.slow
def test_runtime_on_a_replay_clock_pauses_seeks_and_replays_deterministically():
    sc, _ = _sim()
    t0 = sc.start_time_s
    reference = _runtime()
    ref = reference.add_sink(PictureRecorder())
    reference.run()

    rt = _runtime(clock=ReplayClock(speed=20.0))
    sink = rt.add_sink(Latest())
    rt.start()
    _wait(lambda: rt.now_s >= t0 + 10)
    rt.pause()
    assert rt.paused
    time.sleep(0.1)  # let an update in progress finish
    n, now = len(sink.pictures), rt.now_s
    time.sleep(0.3)
    assert len(sink.pictures) == n and rt.now_s == now  # nothing moves while paused
    rt.resume()
    rt.seek(t0 + 90)  # forward: every update up to t0+90 runs at once
    _wait(lambda: any(p.time_s >= t0 + 90 for p in sink.pictures))
    rt.pause()
    rt.seek(t0 + 30)  # backward: restart from the start and fast-forward
    _wait(lambda: sink.seeks == [t0 + 30])
    rt.set_speed(1000.0)
    rt.resume()
    result = rt.join(60.0)
    assert result is not None and rt.error is None
    assert rt.speed == 1000.0
    after = [p for p in sink.pictures[sink.pictures.index(next(p for p in sink.pictures if p.time_s >= t0 + 90)):]]
    restart = next(i for i in range(1, len(after)) if after[i].time_s < after[i - 1].time_s)
    replay = after[restart:]
    # the replay after the backward seek is the virtual run, picture for picture
    for kind in ("coalition", "own"):
        for partner in ("JPN", "USA", "AUS"):
            got = [p for p in replay if p.partner == partner and p.kind == kind]
            assert _bytes(got) == _bytes(ref.pictures[(partner, kind)]), (partner, kind)


def test_a_non_restartable_source_cannot_seek_backward():
    sc, sim = _sim()
    from siap.pipeline import tracker_config_for

    rt = Runtime(load_policy(POLICY), [iter(ArraySource(sim.plots))], sensor_ids=[s.id for s in sim.sensors],
                 tracker_config=tracker_config_for(sc), start_s=sc.start_time_s, end_s=sc.end_time_s)
    rt.run(until_s=sc.start_time_s + 20)
    with pytest.raises(ValueError, match="restartable"):
        rt.seek(sc.start_time_s + 5)


def test_bad_batches_are_dropped_and_counted():
    sc, sim = _sim()
    from siap.pipeline import tracker_config_for

    bad = np.zeros(3, dtype=[("time_s", "f8")])
    batches = [sim.plots[:100], bad, sim.plots[100:200], records.empty_plots(0), sim.plots[200:300]]
    rt = Runtime(load_policy(POLICY), [batches], sensor_ids=[s.id for s in sim.sensors],
                 tracker_config=tracker_config_for(sc), start_s=sc.start_time_s,
                 end_s=float(sim.plots["time_s"][299]) + 1.0)
    result = rt.run()
    assert result.plots["dropped_bad_batch"] == 3
    assert result.plots["released"] == 300


def test_update_schedule():
    s = UpdateSchedule(100.0, period_s=2.0)
    assert s.first() == 102.0 and s.next_after(102.0) == 104.0 and s.next_after(103.1) == 104.0
    e = UpdateSchedule(100.0, times=np.array([105.0, 110.0]))
    assert e.first() == 105.0 and e.next_after(105.0) == 110.0 and e.next_after(110.0) == float("inf")
    with pytest.raises(ValueError):
        UpdateSchedule(0.0, period_s=0.0)


def test_coalition_result_hands_back_pictures_and_histories():
    from siap.coalition import run_coalition
    from siap.pipeline import evaluation_times

    sc, sim = _sim()
    times = evaluation_times(sim.truth, 5.0)
    res = run_coalition(sim.plots, load_policy(POLICY), times, origin=(35.0, 135.0, 0.0), centralised=False)
    pic = res.picture("JPN", at_s=times[10] + 1.0)
    assert isinstance(pic, Picture) and pic.time_s == times[10] and pic.kind == "coalition" and len(pic) > 0
    assert res.picture("JPN").time_s == times[-1]
    track_id = int(pic.tracks["track_id"][0])
    hist = res.history("JPN", track_id)
    assert len(hist) > 1 and hist.at(times[10])["track_id"] == track_id
    assert len(res.pictures("AUS", kind="own")) == len(times)


def test_fuser_predicts_contributions_of_different_times_to_the_fusion_time():
    """Partners publish on their own periods, so a node fuses local tracks of different times
    of validity: TrackFuser.update predicts each to the fusion time (CV) before associating
    and fusing. Noise-free reports of one object 4 s and 1 s old fuse to the object's state
    at the fusion time, not to a mix of old positions."""
    from siap.fusion import FusionConfig, TrackFuser
    from siap.fusion.synthetic import make_local_tracks

    pos0 = np.array([[-3.9e6, 3.3e6, 3.7e6]])
    vel = np.array([[200.0, -50.0, 10.0]])
    cov = np.diag([40.0**2] * 3 + [3.0**2] * 3)
    fuser = TrackFuser(FusionConfig(source_id_bits=32))
    t = 1_700_000_000.0
    for step in range(3):  # associate_after consecutive passes merge the two
        now = t + step
        jpn = make_local_tracks(pos0 + vel * (now - 4 - t), vel, "JPN", [1], now - 4, cov)
        usa = make_local_tracks(pos0 + vel * (now - 1 - t), vel, "USA", [7], now - 1, cov)
        out = fuser.update(np.concatenate([jpn, usa]), now)
    assert len(out) == 1 and out["time_s"][0] == now
    np.testing.assert_allclose(out["pos_ecef_m"][0], pos0[0] + vel[0] * (now - t), atol=1e-6)
    np.testing.assert_allclose(out["vel_ecef_mps"][0], vel[0], atol=1e-9)
    # one report alone is predicted too, and its covariance grows with the prediction
    alone = TrackFuser(FusionConfig(source_id_bits=32)).update(jpn, now)
    np.testing.assert_allclose(alone["pos_ecef_m"][0], pos0[0] + vel[0] * (now - t), atol=1e-6)
    assert np.trace(alone["cov_ecef"][0][:3, :3]) > np.trace(cov[:3, :3])


def test_threaded_source_hands_out_everything_without_blocking():
    from siap.runtime import ThreadedSource

    _, sim = _sim()
    gate = threading.Event()

    def feed():
        yield sim.plots[:50]
        gate.wait()  # a feed with nothing to say for a while
        yield sim.plots[50:120]

    it = iter(ThreadedSource(feed()))
    got = []
    empties = 0
    while True:
        try:
            batch = next(it)
        except StopIteration:
            break
        if len(batch) == 0:
            empties += 1
            gate.set()  # the loop was not blocked: let the feed go on
            time.sleep(0.01)
        got.append(batch)
    assert empties > 0
    assert np.concatenate(got).tobytes() == sim.plots[:120].tobytes()


def test_real_time_clock_reads_the_wall_clock_and_a_stop_ends_a_started_run():
    from siap.runtime import RealTimeClock

    clock = RealTimeClock()
    clock.start(0.0)
    assert abs(clock.now() - time.time()) < 1.0
    rt = _runtime(clock=ReplayClock(speed=1.0))
    rt.start()
    result = rt.stop(timeout_s=30.0)
    assert result is not None and rt.error is None and not rt._thread.is_alive()
    assert result.stop_s < rt.end_s
