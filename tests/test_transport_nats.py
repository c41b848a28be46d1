"""NatsBus over a real nats-server started by these tests (loopback, JetStream, tmp store).

Checks: signed envelopes survive the trip and verify; per-subject order; conservation (every
message delivered exactly once, in order) under random publish/drain sequences and across a
server crash + restart on the same port and store; server-side de-duplication by message id;
durable resume by a new client; one-line TransportError when the server is unreachable.

Needs Debian's ``nats-server`` (apt-get install nats-server); without it these tests FAIL with
that message (they never skip).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats_support import MISSING, NATS_SERVER, NatsServer, free_port  # noqa: E402,F401
from sharing_support import sane_tracks  # noqa: E402

from siap.errors import SiapError
from siap.geo import geodetic_to_ecef
from siap.sharing import NodeIdentity, Policy, SignedEnvelope, Signer, TrustStore, Verifier
from siap.transport.nats import NatsBus, TransportError, durable_name, message_id


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = NatsServer(tmp_path_factory.mktemp("nats") / "store").start()
    yield srv
    srv.stop()


@pytest.fixture
def own_server(tmp_path):
    srv = NatsServer(tmp_path / "store").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def pub(server):
    with NatsBus(server.url, unreachable_timeout_s=10) as bus:
        yield bus


@pytest.fixture(scope="module")
def sub(server):
    with NatsBus(server.url, unreachable_timeout_s=10) as bus:
        yield bus


def fresh(n: int = 1) -> list[str]:
    tag = uuid.uuid4().hex[:12]
    return [f"siap.test.{tag}.s{i}" for i in range(n)]


def drain_all(bus: NatsBus, subject: str, expected: int) -> list[bytes]:
    """Drain until ``expected`` messages came (each drain waits a bounded time)."""
    out: list[bytes] = []
    for _ in range(20):
        out += bus.drain(subject, wait_s=2.0, min_messages=expected - len(out))
        if len(out) >= expected:
            break
    out += bus.drain(subject, wait_s=0.2)  # nothing more may come
    return out


# ---------------------------------------------------------------------------------------
POLICY = Policy.from_mapping(
    {
        "policy": "test",
        "partners": {
            "GBR": {
                "clearance": "SECRET",
                "track_label": "SIAP//CONFIDENTIAL//REL TO GBR, USA",
                "sensors": {"gbr-radar": {"label": "SIAP//CONFIDENTIAL//REL TO GBR, USA"}},
            },
            "USA": {
                "clearance": "SECRET",
                "track_label": "SIAP//CONFIDENTIAL//REL TO GBR, USA",
                "sensors": {"usa-radar": {"label": "SIAP//CONFIDENTIAL//REL TO GBR, USA"}},
            },
        },
    },
    "transport-test-policy",
)


def track_batch(n: int, t: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    b = sane_tracks(n, t, "GBR", "gbr-radar", "SIAP//CONFIDENTIAL//REL TO GBR, USA", first_id=0)
    b["lat_deg"], b["lon_deg"] = rng.uniform(-60, 60, n), rng.uniform(-180, 180, n)
    b["pos_ecef_m"] = geodetic_to_ecef(b["lat_deg"], b["lon_deg"], b["alt_m"])
    return b


def test_signed_envelopes_round_trip_and_verify(pub, sub):
    (subject,) = fresh()
    sub.subscribe(subject)
    gbr = NodeIdentity.generate("gbr-node", "GBR")
    signer = Signer(gbr, first_seq=1)
    verifier = Verifier(TrustStore([gbr]), POLICY, recipient="USA")
    t0 = time.time()
    batches = [track_batch(n, t0 + i, seed=i) for i, n in enumerate((1, 40, 300))]  # up to ~50 kB
    wire = [e.to_bytes() for b in batches for e in signer.sign_batch(b, "tracks", time_s=float(b["time_s"][0]), recipient="USA")]
    for w in wire:
        pub.publish(subject, w)
    got = drain_all(sub, subject, len(wire))
    assert got == wire  # byte-identical, same order
    for w, b in zip(got, batches, strict=True):
        assert SignedEnvelope.from_bytes(w).seq >= 1
        rows = verifier.verify(w, now_s=t0 + 3)
        for name in b.dtype.names:
            np.testing.assert_array_equal(rows[name], b[name])
    assert verifier.counts["accepted"] == 3
    assert sub.delivered[subject] == 3 and pub.published[subject] == 3


def test_per_subject_order_and_isolation(pub, sub):
    a, b = fresh(2)
    sub.subscribe(a)
    sub.subscribe(b)
    for i in range(200):
        pub.publish(a if i % 3 else b, f"{i}".encode())
    got_a, got_b = drain_all(sub, a, 133), drain_all(sub, b, 67)
    assert got_a == [f"{i}".encode() for i in range(200) if i % 3]
    assert got_b == [f"{i}".encode() for i in range(200) if i % 3 == 0]
    assert sub.drain(a, wait_s=0.1) == [] and sub.drain(b, wait_s=0.1) == []


def test_messages_before_subscribe_are_not_kept(pub, sub):
    """Like InProcessBus.subscribe: a new consumer starts with later messages."""
    (s,) = fresh()
    pub.publish(s, b"early")
    sub.subscribe(s)
    pub.publish(s, b"late")
    assert drain_all(sub, s, 1) == [b"late"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from(["pub", "drain"]), st.integers(0, 2), st.integers(0, 3)), max_size=40))
def test_conservation_random_publish_drain(pub, sub, ops):
    """Every published message is delivered exactly once, in publication order per subject,
    whatever the interleaving of publishes and drains; identical payloads included."""
    subjects = fresh(3)
    for s in subjects:
        sub.subscribe(s)
    sent: dict[str, list[bytes]] = {s: [] for s in subjects}
    got: dict[str, list[bytes]] = {s: [] for s in subjects}
    for k, (op, i, size) in enumerate(ops):
        s = subjects[i]
        if op == "pub":
            msg = f"{k}:".encode() + bytes(10**size)  # 1 B .. 1 kB payloads, unique per op
            pub.publish(s, msg)
            sent[s].append(msg)
        else:
            got[s] += sub.drain(s, wait_s=2.0)
            assert got[s] == sent[s][: len(got[s])]  # never ahead, never out of order
    for s in subjects:
        got[s] += drain_all(sub, s, len(sent[s]) - len(got[s]))
        assert got[s] == sent[s]
        sub.unsubscribe(s, delete_consumer=True)


def test_duplicate_publish_is_stored_once(pub, sub):
    (s,) = fresh()
    sub.subscribe(s)
    before = pub.duplicates[s]
    pub.publish(s, b"same envelope")
    pub.publish(s, b"same envelope")  # a retry after a lost ack looks exactly like this
    pub.publish(s, b"other envelope")
    assert pub.duplicates[s] - before == 1
    assert pub.published[s] == 3
    assert drain_all(sub, s, 2) == [b"same envelope", b"other envelope"]


def test_duplicate_of_raw_publish_with_same_id(server, pub, sub):
    """A message stored by another client with the same Nats-Msg-Id (e.g. a node that crashed
    before it saw the ack) is not stored again."""
    import asyncio

    import nats

    (s,) = fresh()
    sub.subscribe(s)
    msg = b"sealed envelope bytes"

    async def raw():
        nc = await nats.connect(server.url)
        ack = await nc.jetstream().publish(s, msg, headers={"Nats-Msg-Id": message_id(s, msg)})
        await nc.close()
        return ack

    assert not asyncio.run(raw()).duplicate
    pub.publish(s, msg)
    assert pub.duplicates[s] == 1
    assert drain_all(sub, s, 1) == [msg]


def test_requeue_is_not_deduplicated(pub, sub):
    """requeue plays an attacker replaying a message: it must reach the receiver."""
    (s,) = fresh()
    sub.subscribe(s)
    pub.publish(s, b"m")
    pub.requeue(s, b"m")
    assert drain_all(sub, s, 2) == [b"m", b"m"]
    assert pub.published[s] == 1


def test_durable_consumer_resumes_in_new_client(server, pub):
    (s,) = fresh()
    with NatsBus(server.url, durable_prefix="resume") as first:
        first.subscribe(s)
        for i in range(5):
            pub.publish(s, b"a%d" % i)
        assert drain_all(first, s, 5) == [b"a%d" % i for i in range(5)]
        for i in range(3):
            pub.publish(s, b"b%d" % i)  # published while no client is pulling
    with NatsBus(server.url, durable_prefix="resume") as second:
        assert second.drain(s, wait_s=2.0, min_messages=3) == [b"b0", b"b1", b"b2"]


def test_durable_names_are_valid_and_distinct():
    a, b = durable_name("siap", "a.b_c"), durable_name("siap", "a_b.c")
    assert a != b
    for name in (a, b, durable_name("x y", "siap.tracks.*.>")):
        assert not set(name) & set(". *>\t")


def test_server_crash_and_restart_loses_and_duplicates_nothing(own_server):
    """Kill -9 the server mid-run, publish during the outage, restart it on the same port and
    store dir: the stream and consumers come back and every message is delivered once, in order."""
    srv = own_server
    subjects = [f"siap.tracks.{p}" for p in ("GBR", "USA", "AUS")]
    pubbus = NatsBus(srv.url, unreachable_timeout_s=20, ack_timeout_s=0.5)
    subbus = NatsBus(srv.url, unreachable_timeout_s=20, ack_timeout_s=0.5)
    try:
        for s in subjects:
            subbus.subscribe(s)
        sent = {s: [] for s in subjects}
        got = {s: [] for s in subjects}

        def send(i: int) -> None:
            s = subjects[i % 3]
            msg = b"%d:" % i + os.urandom(2000)
            pubbus.publish(s, msg)
            sent[s].append(msg)

        for i in range(60):
            send(i)
        for s in subjects[:2]:  # two subjects drained, the third left pending over the crash
            got[s] += drain_all(subbus, s, len(sent[s]))
        srv.kill()
        restarter = threading.Timer(1.0, srv.start)
        restarter.start()
        try:
            for i in range(60, 120):  # the first of these wait for the restart
                send(i)
        finally:
            restarter.join()
        for s in subjects:
            got[s] += drain_all(subbus, s, len(sent[s]) - len(got[s]))
            assert got[s] == sent[s]
        assert pubbus.retries.total() > 0
        assert pubbus.reconnects >= 1 and subbus.reconnects >= 1
        assert sum(pubbus.published.values()) == 120 == sum(subbus.delivered.values())
    finally:
        pubbus.close()
        subbus.close()


@pytest.fixture(scope="module")
def crashy(tmp_path_factory):
    """A server of its own that the property test below crashes and restarts, with two clients."""
    srv = NatsServer(tmp_path_factory.mktemp("crashy") / "store").start()
    pubbus = NatsBus(srv.url, unreachable_timeout_s=20, ack_timeout_s=0.5)
    subbus = NatsBus(srv.url, unreachable_timeout_s=20, ack_timeout_s=0.5)
    yield srv, pubbus, subbus
    pubbus.close()
    subbus.close()
    srv.stop()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(st.tuples(st.sampled_from(["pub", "pub", "pub", "drain"]), st.integers(0, 2)), min_size=5, max_size=40),
    restarts=st.lists(st.tuples(st.integers(0, 39), st.sampled_from(["kill", "term"])), min_size=1, max_size=2),
)
def test_conservation_across_server_restarts(crashy, ops, restarts):
    """Random publishes and drains on 3 subjects with the server crashed (kill -9) or stopped
    (SIGTERM) at random points and restarted 0.3 s later on the same port and store, while the
    clients keep publishing: every message is delivered exactly once, in order."""
    srv, pubbus, subbus = crashy
    subjects = fresh(3)
    for s in subjects:
        subbus.subscribe(s)
    sent: dict[str, list[bytes]] = {s: [] for s in subjects}
    got: dict[str, list[bytes]] = {s: [] for s in subjects}
    restarter: threading.Timer | None = None
    try:
        for k, (op, i) in enumerate(ops):
            for how in (how for at, how in restarts if at % len(ops) == k):
                if restarter is not None:
                    restarter.join()
                if how == "kill":
                    srv.kill()
                else:
                    srv.stop()
                restarter = threading.Timer(0.3, srv.start)
                restarter.start()
            s = subjects[i]
            if op == "pub":
                msg = b"%d:" % k + bytes(500)
                pubbus.publish(s, msg)
                sent[s].append(msg)
            else:
                got[s] += subbus.drain(s, wait_s=2.0)
                assert got[s] == sent[s][: len(got[s])]
    finally:
        if restarter is not None:
            restarter.join()
    for s in subjects:
        got[s] += drain_all(subbus, s, len(sent[s]) - len(got[s]))
        assert got[s] == sent[s]
        subbus.unsubscribe(s, delete_consumer=True)


def test_unreachable_server_is_a_clear_error():
    port = free_port()  # nothing listens there
    with pytest.raises(TransportError) as info:
        NatsBus(f"nats://127.0.0.1:{port}", connect_timeout_s=0.2, unreachable_timeout_s=1.0)
    msg = str(info.value)
    assert isinstance(info.value, SiapError) and "\n" not in msg
    assert f"127.0.0.1:{port}" in msg and "unreachable" in msg


def test_server_gone_for_good_is_a_clear_error_with_retries(own_server):
    bus = NatsBus(own_server.url, unreachable_timeout_s=1.5, ack_timeout_s=0.3)
    try:
        bus.subscribe("siap.tracks.GBR")
        bus.publish("siap.tracks.GBR", b"before")
        own_server.kill()
        with pytest.raises(TransportError) as info:
            bus.publish("siap.tracks.GBR", b"after")
        assert "unreachable" in str(info.value) and "\n" not in str(info.value)
        assert bus.retries["siap.tracks.GBR"] > 0
        with pytest.raises(TransportError):
            bus.drain("siap.tracks.GBR", wait_s=0.1)
    finally:
        bus.close()
    with pytest.raises(TransportError):
        bus.publish("siap.tracks.GBR", b"closed")


def test_message_larger_than_max_payload_is_a_clear_error(pub):
    (s,) = fresh()
    with pytest.raises(TransportError) as info:
        pub.publish(s, bytes(2 * 1024 * 1024))
    assert "max_payload" in str(info.value)


def test_redeliveries_after_lost_consumer_state_are_dropped(server, pub):
    """A server that lost a consumer's ack state (crash before its state was written) delivers
    acknowledged messages again; the bus hands out nothing twice and counts the redeliveries."""
    import asyncio

    import nats
    from nats.js import api

    (s,) = fresh()
    with NatsBus(server.url, durable_prefix="lost") as bus:
        bus.subscribe(s)
        for i in range(3):
            pub.publish(s, b"old%d" % i)
        assert drain_all(bus, s, 3) == [b"old0", b"old1", b"old2"]
        durable = durable_name("lost", s)

        async def forget():  # the consumer comes back from the beginning of the stream
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            await js.delete_consumer("SIAP", durable)
            cfg = api.ConsumerConfig(durable_name=durable, name=durable, filter_subject=s,
                                     deliver_policy=api.DeliverPolicy.ALL, ack_policy=api.AckPolicy.EXPLICIT)
            await js.add_consumer("SIAP", cfg)
            await nc.close()

        asyncio.run(forget())
        pub.publish(s, b"new0")
        pub.publish(s, b"new1")
        assert drain_all(bus, s, 2) == [b"new0", b"new1"]
        assert bus.redelivered[s] == 3 and bus.delivered[s] == 5


def test_fetch_replies_lost_in_an_outage_are_fetched_again_in_order(own_server):
    """Messages the server delivered but the client never saw (a fetch reply lost when the
    connection dropped) stay 'delivered, unacked' on the server and would come back only after
    ack_wait, behind newer ones. After the reconnect the bus re-positions its consumer after the
    last message it handed out, so they come next, in order."""
    srv = own_server
    s = "siap.tracks.USA"
    with NatsBus(srv.url, unreachable_timeout_s=20, ack_timeout_s=0.5) as pubbus, \
            NatsBus(srv.url, unreachable_timeout_s=20, ack_timeout_s=0.5, ack_wait_s=60) as bus:
        bus.subscribe(s)
        msgs = [b"m%d" % i for i in range(8)]
        for m in msgs[:2]:
            pubbus.publish(s, m)
        assert drain_all(bus, s, 2) == msgs[:2]
        for m in msgs[2:5]:
            pubbus.publish(s, m)
        # the server hands m2, m3 to this client's consumer; the replies are "lost"
        lost = bus._run(bus._subs[s].psub.fetch(2, timeout=2.0))
        assert [m.data for m in lost] == msgs[2:4]
        srv.stop()  # graceful: the server keeps m2, m3 as delivered-unacked in its state
        srv.start()
        for m in msgs[5:]:
            pubbus.publish(s, m)  # waits for the reconnect
        assert drain_all(bus, s, 6) == msgs[2:]
        assert bus.reconnects >= 1


# ---------------------------------------------------------------------------------------
# The coalition over NATS: same pictures as over the in-process bus
DATA = Path(__file__).parent / "data"


def _small_coalition(n_times: int):
    import siap
    from siap.pipeline import evaluation_times
    from siap.sharing.policy import load_policy

    sc = siap.load_scenario(DATA / "coalition_small.yaml")
    sim = siap.simulate(sc)
    times = evaluation_times(sim.truth, 5.0)[:n_times]
    policy = load_policy(DATA / "coalition_small_policy.yaml")
    return sim.plots[sim.plots["time_s"] <= times[-1]], policy, times, (35.0, 135.0, 0.0)


class Attacker:
    """Deterministic: flips a signature byte of every 5th message, replays an earlier one every 7th."""

    def __init__(self) -> None:
        self.n, self.kept = 0, {}

    def __call__(self, subject: str, message: bytes):
        self.n += 1
        if self.n % 5 == 0:
            b = bytearray(message)
            b[-20] ^= 0x40
            return bytes(b)
        kept = self.kept.setdefault(subject, [])
        if self.n % 7 == 0 and kept:
            return [(subject, kept[0]), (subject, message)]  # a replay, then the genuine one
        kept.append(message)
        return message


@pytest.mark.parametrize("attack", [False, True])
def test_coalition_run_over_nats_matches_in_process_bus(server, attack):
    """run_coalition over a NatsBus: the same messages, rejections and pictures as over the
    in-process bus (byte for byte); with an attacker on the link, replays reach the verifier."""
    import siap.coalition as coalition

    plots, policy, times, origin = _small_coalition(12 if not attack else 8)
    ref = coalition.run_coalition(plots, policy, times, origin=origin, centralised=False,
                                  tamper=Attacker() if attack else None)

    run = uuid.uuid4().hex[:8]
    with NatsBus(server.url, durable_prefix=f"coal{run}", unreachable_timeout_s=10) as bus:
        res = coalition.run_coalition(plots, policy, times, origin=origin, centralised=False,
                                      tamper=Attacker() if attack else None, bus=bus,
                                      subject_prefix=f"siap.run.{run}.tracks")
    assert res.messages == ref.messages and res.messages["published"] > 0
    assert res.rejected == ref.rejected
    if attack:
        reasons = set().union(*(r.keys() for r in res.rejected.values()))
        assert "replayed" in reasons and len(reasons) >= 2  # replays were not de-duplicated away
    else:
        assert res.messages["published"] == res.messages["delivered"] == res.messages["accepted"]
    for p in ref.partners:
        assert res.coalition[p].tobytes() == ref.coalition[p].tobytes(), p
        assert len(res.coalition[p]) > 0


@pytest.mark.slow
def test_node_processes_over_nats_share_and_fuse_without_lockstep(server, tmp_path):
    """Three partner nodes as separate processes (python -m siap.transport.node run) on replay
    clocks with a common wall anchor, no lockstep: each fuses what has arrived by its update,
    so the pictures are not bit-for-bit the in-process ones, but every node receives and
    accepts the others' tracks, fuses them (its coalition picture holds other partners'
    contributions and beats its own), and the coalition completeness is close to the
    in-process run's."""
    import sys
    import time

    import siap
    from siap.coalition import run_coalition
    from siap.evaluation import evaluate
    from siap.pipeline import evaluation_times, tracker_config_for
    from siap.records import read_parquet
    from siap.sharing.policy import load_policy
    from siap.transport.node import main as node_main

    scenario, policy_file, steps = DATA / "coalition_small.yaml", DATA / "coalition_small_policy.yaml", 8
    assert node_main(["keys", "--policy", str(policy_file), "--out", str(tmp_path / "keys")]) == 0
    run_id = f"t{uuid.uuid4().hex[:10]}"
    wall_start = time.time() + 12.0  # the processes import, simulate and compile meanwhile
    procs = {
        p: subprocess.Popen(
            [sys.executable, "-m", "siap.transport.node", "run", "--partner", p, "--scenario", str(scenario),
             "--policy", str(policy_file), "--keys", str(tmp_path / "keys"), "--url", server.url,
             "--run", run_id, "--out", str(tmp_path / "out"), "--max-steps", str(steps),
             "--speed", "4", "--wall-start-s", repr(wall_start)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        for p in ("AUS", "JPN", "USA")
    }
    outputs = {p: proc.communicate(timeout=180)[0].decode() for p, proc in procs.items()}
    for p, proc in procs.items():
        assert proc.returncode == 0, outputs[p][-2000:]

    sc = siap.load_scenario(scenario)
    sim = siap.simulate(sc)
    times = evaluation_times(sim.truth, 5.0)[:steps]
    truth = sim.truth[np.isin(sim.truth["time_s"], times)]
    ref = run_coalition(sim.plots, load_policy(policy_file), times,
                        origin=(sc.origin.lat_deg, sc.origin.lon_deg, sc.origin.alt_m),
                        sensor_ids=[s.id for s in sim.sensors], tracker_config=tracker_config_for(sc), centralised=False)
    published = accepted = 0
    for p in ref.partners:
        pic, _ = read_parquet(tmp_path / "out" / f"{p}-coalition.parquet")
        own, _ = read_parquet(tmp_path / "out" / f"{p}-own.parquet")
        assert set(np.unique(pic["time_s"]).tolist()) <= set(times.tolist())
        others = [q for q in ref.partners if q != p]
        assert any(q + ":" in src for src in pic["sources"].tolist() for q in others), p
        summary = json.loads((tmp_path / "out" / f"{p}-summary.json").read_text())
        assert set(summary["rejected"]) <= {"expired"}, summary  # late, never forged or altered
        published += summary["messages"]["published"]
        accepted += summary["messages"]["accepted"]
        node_c = evaluate(truth, pic).summary()["siap_completeness"]
        own_c = evaluate(truth, own).summary()["siap_completeness"]
        ref_c = evaluate(truth, ref.coalition[p]).summary()["siap_completeness"]
        assert node_c >= own_c, p
        assert abs(node_c - ref_c) <= 0.15, (p, node_c, ref_c)
    assert 0 < accepted <= published
