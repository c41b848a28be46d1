"""Faults on a multi-process coalition network (3 NATS servers in a JetStream cluster, an
account per partner, TLS; node processes started and killed by PID). Every message is
numbered (envelope sequence numbers; the test's own counters) and the sets sent, stored and
applied are compared, and pictures are compared with an uninterrupted run's, bit for bit."""

from __future__ import annotations

import pickle
import signal
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from nodes_support import LocalNetwork, summary, wait_for

from siap.sharing.signing import SignedEnvelope

DURATION_S = 120.0  # scenario seconds (24 partner updates of 5 s)


@pytest.fixture
def network(tmp_path):
    net = LocalNetwork(tmp_path).start_servers()
    yield net
    net.close()


def _snapshot_reached(path) -> float:
    try:
        with open(path, "rb") as f:
            return float(pickle.load(f)["reached"])
    except (OSError, EOFError, pickle.UnpicklingError, KeyError):
        return -np.inf


@pytest.mark.slow
def test_a_killed_partner_node_resumes_from_its_snapshot_and_converges_to_the_uninterrupted_run(network, tmp_path):
    start_s = 1772420400.0  # pacific's start
    # 1. every gateway publishes its plots (numbered envelopes) for the span
    for p in ("AUS", "JPN", "USA"):
        network.start(f"gw-{p}", network.config(f"gateway-{p}", duration_s=DURATION_S))
    for p in ("AUS", "JPN", "USA"):
        network.wait(f"gw-{p}")
    gw = {p: pickle.load(open(tmp_path / "state" / f"gateway-{p}" / "gateway.pkl", "rb")) for p in ("AUS", "JPN", "USA")}
    # 2. USA and AUS track and release to JPN
    for p in ("AUS", "USA"):
        network.start(f"node-{p}", network.config(f"partner-{p}", duration_s=DURATION_S))
    for p in ("AUS", "USA"):
        network.wait(f"node-{p}")
    # 3. JPN twice over the same streams, with its own consumers and state: once uninterrupted,
    #    once killed (SIGKILL) in the middle and restarted
    clock = {"speed": 8.0, "wall_start_s": time.time() + 3.0}
    ref = tmp_path / "jpn-ref"
    live = tmp_path / "jpn-live"
    ref_cfg = network.config("partner-JPN", duration_s=DURATION_S, consumer="ref", state_dir=str(ref), clock=clock)
    live_cfg = network.config("partner-JPN", duration_s=DURATION_S, consumer="live", state_dir=str(live), clock=clock)
    network.start("jpn-ref", ref_cfg)
    proc = network.start("jpn-live", live_cfg)
    wait_for(lambda: _snapshot_reached(live / "partner.pkl") >= start_s + 50.0, 120, "JPN's snapshot at +50 s")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    killed_at = _snapshot_reached(live / "partner.pkl")
    assert killed_at < start_s + DURATION_S
    # an attacker replays (fresh message id, so the server stores it again) an envelope the
    # killed node accepted before its last snapshot: the restored verifier's window refuses it
    run = network.net.run
    reader = network.bus("JPN", durable_prefix="spy")
    stored = reader.drain(f"siap.run.{run}.tracks.JPN", wait_s=5.0)
    reader.close()
    old = max((m for m in stored if SignedEnvelope.from_bytes(m).time_s <= killed_at - 5.0),
              key=lambda m: SignedEnvelope.from_bytes(m).time_s)
    attacker = network.bus("USA", durable_prefix="attacker")
    attacker.requeue(f"siap.run.{run}.tracks.JPN", old)
    attacker.close()
    network.start("jpn-live", live_cfg)
    network.wait("jpn-live")
    network.wait("jpn-ref")

    s_ref, s_live = summary(ref), summary(live)
    assert s_ref["restored_from_s"] is None
    assert s_live["restored_from_s"] is not None and start_s + 50.0 <= s_live["restored_from_s"] < start_s + DURATION_S
    # every plot envelope JPN's gateway sent (sequence numbers 1..n) applied exactly once by both
    sent = set(range(1, gw["JPN"]["next_seq"]))
    assert len(sent) == gw["JPN"]["sent"] > 50
    for state in (ref, live):
        applied = __import__("json").loads((state / "applied-plots.json").read_text())
        assert len(applied) == len(set(applied))  # nothing applied twice (redelivery after the kill)
        assert set(applied) == sent  # nothing lost
    assert s_ref["plot_envelopes_rejected"] == s_live["plot_envelopes_rejected"] == {}
    # the others' releases to JPN: the same accepted and none refused in either run
    assert s_ref["tracks_accepted"] == s_live["tracks_accepted"] > 0
    assert s_live["tracks_rejected"] == {"replayed": 1}
    assert s_ref["tracks_rejected"] in ({"replayed": 1}, {"expired": 1})  # depends on how far ahead it was
    assert s_ref["updates"] == s_live["updates"] == int(DURATION_S / 5.0)
    # the pictures at the end: the restored run's are those of the uninterrupted run, bit for bit
    for name in ("own.parquet", "coalition.parquet"):
        a, b = pq.read_table(ref / name), pq.read_table(live / name)
        assert a.num_rows > 0
        assert a.equals(b), name


@pytest.mark.slow
def test_a_cluster_losing_its_stream_leader_while_publishing_loses_no_acknowledged_message(network):
    """A stream replicated on the 3 servers; the server leading it is killed (SIGKILL) while a
    publisher (connected to another server) sends numbered messages. Every message whose
    publish was acknowledged is in the stream afterwards, once."""
    import asyncio

    subj = "siap.run.r3.plots.JPN"
    opts = {"stream": "R3", "subjects": [subj], "placement_tags": (), "ack_timeout_s": 1.0}
    pub = network.bus("JPN", durable_prefix="r3", replicas=3, **opts)

    info = asyncio.run_coroutine_threadsafe(pub._js.stream_info("R3"), pub._loop).result(10)
    assert len(info.cluster.replicas or []) == 2  # leader + 2 replicas
    leader = info.cluster.leader.removeprefix("siap-")
    other = next(p for p in ("AUS", "JPN", "USA") if p != leader)
    pub.close()
    pub = network.bus("JPN", site=other, durable_prefix="r3", **opts)  # JPN's account, via another site
    acked: list[int] = []
    stop = threading.Event()

    def publish() -> None:
        i = 0
        while not stop.is_set() and i < 3000:
            pub.publish(subj, f"m{i}".encode())
            acked.append(i)
            i += 1

    t = threading.Thread(target=publish)
    t.start()
    wait_for(lambda: len(acked) >= 200, 60, "200 acknowledged publishes")
    network.kill_server(leader)
    n_at_kill = len(acked)
    wait_for(lambda: len(acked) >= n_at_kill + 200, 60, "200 more publishes after the leader died")
    stop.set()
    t.join(60)
    reader = network.bus("JPN", site=other, durable_prefix="r3-read", **opts)
    got = []
    while True:
        batch = reader.drain(subj, wait_s=5.0)
        if not batch:
            break
        got += batch
    reader.close()
    pub.close()
    numbers = [int(m[1:]) for m in got]
    assert len(numbers) == len(set(numbers))  # stored once (retried publishes de-duplicated)
    assert set(acked) <= set(numbers)  # no acknowledged message lost
    assert len(acked) >= n_at_kill + 200  # and publishing went on under the new leader


@pytest.mark.slow
def test_a_partner_site_cut_off_for_60_s_of_traffic_others_stay_live_and_it_catches_up(network, tmp_path):
    """JPN's nodes reach the network through a TCP proxy that is cut for 60 scenario seconds
    (15 s at 4x) and restored. Meanwhile USA's and AUS's nodes keep updating (their releases to
    JPN are stored in JPN's stream, theirs from JPN wait in JPN's outbox); afterwards JPN
    catches up: every plot envelope its gateway sent is applied once, every update is run."""
    from nodes_support import TcpProxy

    duration = 200.0
    speed = 4.0
    start_s = 1772420400.0
    proxy = TcpProxy(network.site("JPN").port)
    clock = {"speed": speed, "wall_start_s": time.time() + 8.0}
    via_proxy = {"url": f"tls://127.0.0.1:{proxy.port}", "user": "JPN", "password": network.net.passwords["JPN"],
                 "ca_file": str(network.net.ca_file)}
    try:
        for p in ("AUS", "JPN", "USA"):
            extra = {"nats": via_proxy} if p == "JPN" else {}
            network.start(f"gw-{p}", network.config(f"gateway-{p}", duration_s=duration, clock=clock, **extra))
            network.start(f"node-{p}", network.config(f"partner-{p}", duration_s=duration, clock=clock, **extra))
        state = tmp_path / "state"

        def reached(p: str) -> float:
            return _snapshot_reached(state / f"partner-{p}" / "partner.pkl")

        wait_for(lambda: reached("JPN") >= start_s + 40.0, 120, "JPN at +40 s")
        proxy.cut()
        cut_at = {p: reached(p) for p in ("AUS", "JPN", "USA")}
        cut_wall = time.monotonic()
        time.sleep(60.0 / speed)
        during = {p: reached(p) - cut_at[p] for p in ("AUS", "JPN", "USA")}
        proxy.restore()
        restored_wall = time.monotonic() - cut_wall
        # the others stayed live: their pictures moved on by most of the cut's scenario time
        for p in ("AUS", "USA"):
            assert during[p] >= 0.5 * 60.0, (p, during)
        # JPN could not (its plots come over the cut link): at most the step in hand
        assert during["JPN"] <= 10.0, during
        for p in ("AUS", "JPN", "USA"):
            network.wait(f"gw-{p}", 300)
            network.wait(f"node-{p}", 300)
    finally:
        proxy.close()
    s = {p: summary(state / f"partner-{p}") for p in ("AUS", "JPN", "USA")}
    gw = pickle.load(open(state / "gateway-JPN" / "gateway.pkl", "rb"))
    applied = __import__("json").loads((state / "partner-JPN" / "applied-plots.json").read_text())
    assert len(applied) == len(set(applied))
    assert set(applied) == set(range(1, gw["next_seq"]))  # caught up: every plot, once
    assert s["JPN"]["updates"] == int(duration / 5.0)
    assert s["JPN"]["tracks_accepted"] > 0
    for p in ("AUS", "USA"):
        assert s[p]["updates"] == int(duration / 5.0)
    print(f"cut {restored_wall:.1f} s wall; moved during the cut: {during}; summaries: "
          f"{ {p: (v['tracks_accepted'], v['tracks_rejected'], v['superseded']) for p, v in s.items()} }")
