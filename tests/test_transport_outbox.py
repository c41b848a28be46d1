"""The outbox: publishing never blocks the caller, a newer message of the same key supersedes
a waiting older one (memory bounded by the number of keys however long a link is down), the
bandwidth budget is kept, and every message is accounted for (sent + superseded = queued)."""

from __future__ import annotations

import threading
import time

from siap.transport.outbox import Outbox


class SlowBus:
    """Publishes block while ``gate`` is clear (a cut link); records what got through."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.got: list[tuple[str, bytes]] = []

    def publish(self, subject: str, message: bytes) -> None:
        self.gate.wait()
        self.got.append((subject, message))


def key(subject: str, message: bytes) -> bytes:
    return message.split(b":")[0]  # "track-key:version"


def test_a_cut_link_never_blocks_the_caller_and_newer_states_supersede_older():
    bus = SlowBus()
    box = Outbox(bus, key)
    bus.gate.clear()  # the link is cut

    def produce() -> None:
        for version in range(1000):
            for k in (b"a", b"b", b"c"):
                box.publish("s", k + b":" + str(version).encode())

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join(60)  # (a deadlock guard: a blocking publish would never return)
    assert not producer.is_alive()  # 3000 publishes returned while the link was still cut
    assert box.waiting("s") <= 3  # bounded by the keys, not by the outage (one may be in flight)
    bus.gate.set()  # restored
    assert box.flush(5.0)
    got = [m for _, m in bus.got]
    # the newest state of every key arrived; every message queued was sent or superseded
    for k in (b"a", b"b", b"c"):
        assert k + b":999" in got
    assert box.sent["s"] + box.superseded["s"] == box.queued["s"] == 3000
    assert box.sent["s"] == len(got) <= 4 + 3
    box.close()


def test_messages_of_different_keys_keep_their_order_on_a_healthy_link():
    bus = SlowBus()
    box = Outbox(bus, lambda s, m: m)  # every message its own key: nothing superseded
    for i in range(200):
        box.publish("s", str(i).encode())
    assert box.flush(5.0)
    assert [m for _, m in bus.got] == [str(i).encode() for i in range(200)]
    assert box.superseded["s"] == 0
    box.close()


def test_a_bandwidth_budget_thins_instead_of_queueing():
    bus = SlowBus()
    budget = 20_000.0  # bytes/s
    box = Outbox(bus, key, budget_bytes_per_s={"s": budget})
    payload = b"x" * 1000
    t0 = time.perf_counter()
    offered = 0
    while time.perf_counter() - t0 < 1.5:  # offer ~10x the budget: 10 keys, 1 kB each, every 5 ms
        for k in range(10):
            box.publish("s", f"{k}:".encode() + payload)
            offered += 1001 + len(str(k))
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    box.flush(5.0)
    sent_bytes = box.sent_bytes["s"]
    # what went out stays within the budget (plus the one-second burst), the rest was superseded
    assert sent_bytes <= budget * (elapsed + 1.0) + 2000
    assert offered > 3 * sent_bytes
    assert box.superseded["s"] > 0 and box.waiting("s") == 0
    box.close()
