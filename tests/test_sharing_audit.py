"""Audit log an inspector can trust: every kind of tampering is found by verify_audit_log, at the
right seq, with the verifier's own pinned keys and heads anchored outside the log."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siap.errors import InputError
from siap.sharing import AuditLog, NodeIdentity, TrustStore, verify_audit_log
from siap.sharing.audit import (
    ENTRY_DOMAIN,
    AuditHead,
    canonical_json,
    genesis_hash,
    peer_heads,
    read_head,
    verify_coalition_audit,
)

N = 8
RUN = "run-1"
AUS = NodeIdentity.generate("AUS-node", "AUS")
USA = NodeIdentity.generate("USA-node", "USA")
PINNED = TrustStore([AUS, USA])  # the inspector's own pinned keys


def build(path, ident=AUS, n=N, run=RUN):
    log = AuditLog(path, identity=ident, run_id=run)
    for i in range(n):
        if i % 2:
            log.append("reject", time_s=100.0 + i, reason="forged", origin="usa-node")
        else:
            log.append(
                "release", time_s=100.0 + i, partner="JPN", released={"SIAP//CONFIDENTIAL//REL TO JPN, USA": np.arange(i, i + 3)},
                n_withheld=np.int64(i), ratio=1.0 / (i + 1),
            )
    head = log.head()
    log.close()
    return path, head


def check(path, head=None, **kw):
    kw.setdefault("node", "AUS-node")
    kw.setdefault("run_id", RUN)
    heads = [head] if head is not None else []
    return verify_audit_log(path, kw.pop("trust", PINNED), heads=heads, **kw)


def lines_of(path):
    return path.read_bytes().split(b"\n")[:-1]


def put(path, lines):
    path.write_bytes(b"".join(x + b"\n" for x in lines))


def reseal(entry, key):
    """A forger rewriting an entry: self-consistent hash, signed with ``key``."""
    body = {k: v for k, v in entry.items() if k not in ("hash", "sig")}
    entry["hash"] = hashlib.sha256(canonical_json(body)).hexdigest()
    entry["sig"] = base64.b64encode(key.sign(ENTRY_DOMAIN + bytes.fromhex(entry["hash"]))).decode()
    return entry


def test_entries_known_structure_and_hash(tmp_path):
    p, head = build(tmp_path / "a.log", n=3)
    entries = [json.loads(x) for x in lines_of(p)]
    assert [e["seq"] for e in entries] == [0, 1, 2]
    g = hashlib.sha256(b"siap.sharing.audit.genesis.v2\x00AUS-node\x00" + RUN.encode()).hexdigest()
    assert entries[0]["prev_hash"] == g == genesis_hash("AUS-node", RUN)
    for prev, e in zip(entries, entries[1:], strict=False):
        assert e["prev_hash"] == prev["hash"]
    e = entries[0]
    body = json.dumps({k: v for k, v in e.items() if k not in ("hash", "sig")}, sort_keys=True, separators=(",", ":"))
    assert e["hash"] == hashlib.sha256(body.encode()).hexdigest()
    AUS.public_key.verify(base64.b64decode(e["sig"]), b"siap.sharing.audit.entry.v1\x00" + bytes.fromhex(e["hash"]))
    assert e["details"]["released"] == {"SIAP//CONFIDENTIAL//REL TO JPN, USA": [0, 1, 2]}
    assert e["node"] == "AUS-node" and e["kind"] == "release" and e["time_s"] == 100.0
    res = check(p, head)
    assert res.ok and res.entries == 3 and res.first_bad_seq is None and res.anchored_seq == 2, res
    # the head's signature covers node, run, seq and hash under its own domain
    msg = b"siap.sharing.audit.head.v2\x00" + b"\x08AUS-node" + b"\x05run-1" + (2).to_bytes(8, "big") + bytes.fromhex(head.hash)
    AUS.public_key.verify(base64.b64decode(head.sig), msg)
    assert read_head(str(p) + ".head") == head


def test_reopen_continues_the_chain_and_refuses_another_node_or_run(tmp_path):
    p, _ = build(tmp_path / "a.log", n=3)
    with AuditLog(p, identity=AUS, run_id=RUN) as log:
        e = log.append("release", time_s=200.0, partner="AUS")
        head = log.head()
    assert e["seq"] == 3
    assert check(p, head).entries == 4
    with pytest.raises(InputError, match="another node or run"):
        AuditLog(p, identity=USA, run_id=RUN)
    with pytest.raises(InputError, match="another node or run"):
        AuditLog(p, identity=AUS, run_id="run-2")


def test_a_log_needs_a_node_and_an_anchor(tmp_path):
    with pytest.raises(TypeError):
        AuditLog(tmp_path / "x.log", None, RUN)  # no unsigned logs
    p, head = build(tmp_path / "a.log")
    res = check(p)  # no head anchored anywhere: a cut tail could not be seen
    assert not res.ok and "no head anchored" in res.reason
    assert check(p, require_anchor=False).ok


FIELDS = ["seq", "time_s", "kind", "details", "node", "prev_hash", "hash", "sig"]
ALTER = {
    "seq": lambda v: v + 100,
    "time_s": lambda v: v + 0.5,
    "kind": lambda v: "release" if v == "reject" else "reject",
    "details": lambda v: {**v, "partner": "AUS"},
    "node": lambda v: "USA-node",
    "prev_hash": lambda v: "f" * 64,
    "hash": lambda v: "0" * 64,
    "sig": lambda v: base64.b64encode(b"\x00" * 64).decode(),
}


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("k", [0, 3, N - 1])
def test_edit_any_field_of_any_entry(tmp_path, field, k):
    p, head = build(tmp_path / "a.log")
    lines = lines_of(p)
    e = json.loads(lines[k])
    e[field] = ALTER[field](e[field])
    lines[k] = canonical_json(e)
    put(p, lines)
    res = check(p, head)
    assert not res.ok and res.first_bad_seq == k and res.entries == k, res


@pytest.mark.parametrize("k", [0, 3, 6])
def test_edit_and_resign_with_a_new_key_even_with_a_new_trust_file_beside_the_log(tmp_path, k):
    p, head = build(tmp_path / "a.log")
    attacker = NodeIdentity.generate("AUS-node", "AUS")
    TrustStore([attacker]).save(tmp_path / "trust.yaml")  # what an insider leaves beside the log
    lines = lines_of(p)
    lines[k] = canonical_json(reseal({**json.loads(lines[k]), "time_s": 1.0}, attacker))
    put(p, lines)
    res = check(p, head)
    assert not res.ok and res.first_bad_seq == k and "pinned key" in res.reason


@pytest.mark.parametrize("k", [0, 2, 5])
def test_delete_an_entry(tmp_path, k):
    p, head = build(tmp_path / "a.log")
    lines = lines_of(p)
    del lines[k]
    put(p, lines)
    res = check(p, head)
    assert not res.ok and res.first_bad_seq == k and "removed, inserted or reordered" in res.reason


@pytest.mark.parametrize("k", [0, 3, N - 2])
def test_swap_two_entries(tmp_path, k):
    p, head = build(tmp_path / "a.log")
    lines = lines_of(p)
    lines[k], lines[k + 1] = lines[k + 1], lines[k]
    put(p, lines)
    res = check(p, head)
    assert not res.ok and res.first_bad_seq == k


@pytest.mark.parametrize("k", [0, 4])
def test_insert_a_forged_entry(tmp_path, k):
    p, head = build(tmp_path / "a.log")
    lines = lines_of(p)
    prev = json.loads(lines[k - 1])["hash"] if k else genesis_hash("AUS-node", RUN)
    attacker = NodeIdentity.generate("AUS-node", "AUS")
    forged = reseal(
        {"seq": k, "time_s": 150.0, "kind": "release", "details": {"partner": "KOR"}, "node": "AUS-node", "prev_hash": prev},
        attacker,
    )
    lines.insert(k, canonical_json(forged))
    put(p, lines)
    res = check(p, head)
    assert not res.ok and res.first_bad_seq == k and "signature" in res.reason


def test_append_after_the_anchored_head(tmp_path):
    p, head = build(tmp_path / "a.log")
    with AuditLog(p, identity=AUS, run_id=RUN) as log:  # even by the key holder, after the anchor
        log.append("release", time_s=300.0, partner="KOR")
    res = check(p, head)
    assert not res.ok and res.first_bad_seq == N and "after the last anchored head" in res.reason


@pytest.mark.parametrize("m", [1, 3, N])
def test_truncate_the_tail(tmp_path, m):
    p, head = build(tmp_path / "a.log")
    put(p, lines_of(p)[: N - m])
    res = check(p, head)
    assert not res.ok and res.first_bad_seq == N - m and "truncated" in res.reason, res


def test_truncate_and_roll_the_local_head_back(tmp_path):
    """The head file beside the log is not an anchor: rolling it back with the log changes nothing."""
    p, early = build(tmp_path / "a.log", n=5)
    old_log, old_head = p.read_bytes(), (tmp_path / "a.log.head").read_bytes()
    with AuditLog(p, identity=AUS, run_id=RUN) as log:
        for i in range(3):
            log.append("release", time_s=300.0 + i, partner="USA")
        newer = log.head()
    p.write_bytes(old_log)
    (tmp_path / "a.log.head").write_bytes(old_head)
    assert check(p, early).ok  # an old anchor is consistent with the old log ...
    res = check(p, newer)  # ... the newer one a peer holds is not
    assert not res.ok and res.first_bad_seq == 5 and "truncated" in res.reason


def test_rewrite_the_whole_chain_and_resign_with_a_new_key(tmp_path):
    p, head = build(tmp_path / "a.log", n=5)
    attacker = NodeIdentity.generate("AUS-node", "AUS")
    q, fake_head = build(tmp_path / "b.log", attacker, n=5)
    shutil.copy(q, p)
    shutil.copy(str(q) + ".head", str(p) + ".head")
    TrustStore([attacker]).save(tmp_path / "trust.yaml")
    res = check(p, head)
    assert not res.ok and res.first_bad_seq == 0 and "pinned key" in res.reason
    res = check(p, fake_head)  # a head signed by the new key is no anchor either
    assert not res.ok


def test_substitute_another_nodes_log_or_another_run(tmp_path):
    usa_log, usa_head = build(tmp_path / "usa.log", USA)
    aus_log, aus_head = build(tmp_path / "aus.log", AUS)
    shutil.copy(usa_log, aus_log)  # USA's genuine log passed off as AUS's
    res = check(aus_log, aus_head)
    assert not res.ok and res.first_bad_seq == 0 and "another node" in res.reason
    other_run, other_head = build(tmp_path / "r2.log", AUS, run="run-2")
    res = check(other_run, other_head)  # a genuine AUS log, of another run
    assert not res.ok and res.first_bad_seq == 0 and "another node or run" in res.reason
    res = check(other_run, other_head, run_id="run-2")
    assert res.ok


def test_deleting_the_trust_file_changes_nothing(tmp_path):
    p, head = build(tmp_path / "a.log")
    PINNED.save(tmp_path / "trust.yaml")
    (tmp_path / "trust.yaml").unlink()
    assert check(p, head).ok  # the inspector's keys are its own
    res = check(p, head, trust=TrustStore([USA]))  # a store without the node's key verifies nothing
    assert not res.ok and "not in the trust store" in res.reason


def test_deleting_the_log(tmp_path):
    p, head = build(tmp_path / "a.log")
    p.unlink()
    res = check(p, head)
    assert not res.ok and "cannot read" in res.reason


def test_heads_recorded_by_peers_anchor_each_others_logs(tmp_path):
    aus = AuditLog(tmp_path / "aus.log", AUS, RUN)
    usa = AuditLog(tmp_path / "usa.log", USA, RUN)
    for i in range(3):
        aus.append("release", time_s=float(i), partner="USA")
        usa.append("release", time_s=float(i), partner="AUS")
    ha, hu = aus.head(), usa.head()
    usa.record_peer_head(ha)
    aus.record_peer_head(hu)
    aus.close()
    usa.close()
    logs = {"AUS-node": tmp_path / "aus.log", "USA-node": tmp_path / "usa.log"}
    res = verify_coalition_audit(logs, PINNED, RUN)
    assert all(r.ok for r in res.values()), res
    assert res["AUS-node"].anchored_seq == 2 and res["AUS-node"].entries == 4  # + its trailing peer_head
    assert peer_heads(tmp_path / "usa.log", PINNED, "AUS-node", RUN) == [ha]
    # AUS rewrites its log with a new key: USA's log contradicts it
    attacker = NodeIdentity.generate("AUS-node", "AUS")
    with AuditLog(tmp_path / "forged.log", attacker, RUN) as f:
        for i in range(3):
            f.append("release", time_s=float(i), partner="KOR")
    shutil.copy(tmp_path / "aus.log", tmp_path / "genuine.log")
    shutil.copy(tmp_path / "forged.log", tmp_path / "aus.log")
    assert not verify_coalition_audit(logs, TrustStore([attacker, USA]), RUN)["AUS-node"].ok  # head signature
    shutil.copy(tmp_path / "genuine.log", tmp_path / "aus.log")
    # USA truncates its log: the head AUS recorded names a missing entry
    lines = lines_of(tmp_path / "usa.log")
    put(tmp_path / "usa.log", lines[:2])
    res = verify_coalition_audit(logs, PINNED, RUN)["USA-node"]
    assert not res.ok and "truncated" in res.reason and "aus.log" in res.reason


def test_incomplete_last_line(tmp_path):
    p, head = build(tmp_path / "a.log", n=4)
    raw = p.read_bytes()
    p.write_bytes(raw[:-10])
    res = check(p, head)
    assert not res.ok and res.first_bad_seq == 3 and "incomplete" in res.reason
    with pytest.raises(InputError, match="last entry"):
        AuditLog(p, AUS, RUN)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_single_byte_change_is_detected(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("fuzz")
    p, head = build(d / "a.log", n=4)
    raw = bytearray(p.read_bytes())
    i = data.draw(st.integers(0, len(raw) - 1))
    b = data.draw(st.integers(0, 255).filter(lambda x: x != raw[i]))
    raw[i] = b
    p.write_bytes(bytes(raw))
    res = check(p, head)
    assert not res.ok
    line_no = bytes(raw[:i]).count(b"\n")
    assert res.first_bad_seq is not None and res.first_bad_seq <= line_no


def test_append_refuses_bad_input(tmp_path):
    log = AuditLog(tmp_path / "x.log", AUS, RUN)
    with pytest.raises(ValueError, match="event kind"):
        log.append("Release!")
    with pytest.raises(ValueError, match="NaN"):
        log.append("release", value=float("nan"))
    with pytest.raises(TypeError, match="JSON-serialisable"):
        log.append("release", value=object())
    assert log.append("release", time_s=1.0, ids={3, 1, 2})["details"] == {"ids": [1, 2, 3]}
    head = log.head()
    log.close()
    assert check(tmp_path / "x.log", head).entries == 1
    with pytest.raises(ValueError, match="run id"):
        AuditLog(tmp_path / "y.log", AUS, "bad run/id")


def test_bad_head_files(tmp_path):
    (tmp_path / "h.json").write_text('{"seq": 1}')
    with pytest.raises(ValueError, match="h.json"):
        read_head(tmp_path / "h.json")
    with pytest.raises(ValueError, match="nope.json"):
        read_head(tmp_path / "nope.json")
    p, head = build(tmp_path / "a.log")
    forged = AuditHead(head.node, head.run, head.seq, "ab" * 32, head.sig)
    res = check(p, forged)
    assert not res.ok and "signature" in res.reason


@pytest.mark.parametrize(
    "rewrite",
    [
        lambda e: json.dumps(e).encode(),  # same content, spaces after separators
        lambda e: json.dumps(dict(reversed(list(e.items()))), separators=(",", ":")).encode(),  # key order
        lambda e: canonical_json(e).replace(b'"time_s":103.0', b'"time_s":1.03E2'),  # same float, other spelling
    ],
)
def test_same_content_written_differently_is_detected(tmp_path, rewrite):
    p, head = build(tmp_path / "a.log", n=5)
    lines = lines_of(p)
    changed = rewrite(json.loads(lines[3]))
    assert changed != lines[3] and json.loads(changed) == json.loads(lines[3])
    lines[3] = changed
    put(p, lines)
    res = check(p, head)
    assert not res.ok and res.first_bad_seq == 3 and "canonical" in res.reason
