"""Audit log: every kind of tampering is found by verify_audit_log, at the right seq."""

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
from siap.sharing.audit import ENTRY_DOMAIN, GENESIS_HASH, AuditHead, canonical_json, read_head

N = 8


@pytest.fixture(scope="module")
def keys():
    ident = NodeIdentity.generate("aus-node", "AUS")
    return ident, TrustStore([ident])


def build(path, ident, n=N):
    log = AuditLog(path, identity=ident)
    for i in range(n):
        if i % 2:
            log.append("reject", time_s=100.0 + i, reason="forged", origin="usa-node")
        else:
            log.append(
                "release", time_s=100.0 + i, partner="JPN", released={"SIAP//CONFIDENTIAL//REL TO JPN, USA": np.arange(i, i + 3)},
                n_withheld=np.int64(i), ratio=1.0 / (i + 1),
            )
    log.close()
    return path


def lines_of(path):
    return path.read_bytes().split(b"\n")[:-1]


def put(path, lines):
    path.write_bytes(b"".join(x + b"\n" for x in lines))


def reseal(entry, key=None):
    """What a forger without the node key can do: make the entry's hash self-consistent."""
    body = {k: v for k, v in entry.items() if k not in ("hash", "sig")}
    entry["hash"] = hashlib.sha256(canonical_json(body)).hexdigest()
    if key is not None:
        entry["sig"] = base64.b64encode(key.sign(ENTRY_DOMAIN + bytes.fromhex(entry["hash"]))).decode()
    return entry


def test_entries_known_structure_and_hash(tmp_path, keys):
    ident, store = keys
    p = build(tmp_path / "a.log", ident, 3)
    entries = [json.loads(x) for x in lines_of(p)]
    assert [e["seq"] for e in entries] == [0, 1, 2]
    assert entries[0]["prev_hash"] == GENESIS_HASH
    for prev, e in zip(entries, entries[1:], strict=False):
        assert e["prev_hash"] == prev["hash"]
    e = entries[0]
    body = json.dumps({k: v for k, v in e.items() if k not in ("hash", "sig")}, sort_keys=True, separators=(",", ":"))
    assert e["hash"] == hashlib.sha256(body.encode()).hexdigest()
    ident.public_key.verify(base64.b64decode(e["sig"]), b"siap.sharing.audit.entry.v1\x00" + bytes.fromhex(e["hash"]))
    assert e["details"]["released"] == {"SIAP//CONFIDENTIAL//REL TO JPN, USA": [0, 1, 2]}
    assert e["node"] == "aus-node" and e["kind"] == "release" and e["time_s"] == 100.0
    res = verify_audit_log(p, store)
    assert res.ok and res.entries == 3 and res.first_bad_seq is None
    assert read_head(p) == AuditLog(p, ident).head()


def test_reopen_continues_the_chain(tmp_path, keys):
    ident, store = keys
    p = build(tmp_path / "a.log", ident, 3)
    with AuditLog(p, identity=ident) as log:
        e = log.append("release", time_s=200.0, partner="AUS")
    assert e["seq"] == 3
    assert verify_audit_log(p, store).ok and verify_audit_log(p, store).entries == 4


def test_unsigned_log_verifies_without_trust_store_only(tmp_path, keys):
    _, store = keys
    p = build(tmp_path / "u.log", None, 4)
    assert verify_audit_log(p).ok
    res = verify_audit_log(p, store)
    assert not res.ok and res.first_bad_seq == 0 and "unsigned" in res.reason


FIELDS = ["seq", "time_s", "kind", "details", "node", "prev_hash", "hash", "sig"]
ALTER = {
    "seq": lambda v: v + 100,
    "time_s": lambda v: v + 0.5,
    "kind": lambda v: "release" if v == "reject" else "reject",
    "details": lambda v: {**v, "partner": "AUS"},
    "node": lambda v: "usa-node",
    "prev_hash": lambda v: "f" * 64,
    "hash": lambda v: "0" * 64,
    "sig": lambda v: base64.b64encode(b"\x00" * 64).decode(),
}


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("k", [0, 3, N - 1])
def test_altering_any_field_of_any_entry(tmp_path, keys, field, k):
    ident, store = keys
    p = build(tmp_path / "a.log", ident)
    lines = lines_of(p)
    e = json.loads(lines[k])
    e[field] = ALTER[field](e[field])
    lines[k] = canonical_json(e)
    put(p, lines)
    res = verify_audit_log(p, store)
    assert not res.ok and res.first_bad_seq == k and res.entries == k, res
    if field != "sig":  # the signature is outside the hash: only the trust store sees it
        res = verify_audit_log(p)
        assert not res.ok and res.first_bad_seq == k, res


@pytest.mark.parametrize("k", [0, 3, 6])
def test_altered_entry_with_recomputed_hash(tmp_path, keys, k):
    ident, store = keys
    p = build(tmp_path / "a.log", ident)
    lines = lines_of(p)
    lines[k] = canonical_json(reseal({**json.loads(lines[k]), "time_s": 1.0}))
    put(p, lines)
    assert verify_audit_log(p, store).first_bad_seq == k  # signature no longer matches
    assert verify_audit_log(p).first_bad_seq == k + 1  # chain alone: the next prev_hash breaks


@pytest.mark.parametrize("k", [0, 2, 5])
def test_removing_an_entry(tmp_path, keys, k):
    ident, store = keys
    p = build(tmp_path / "a.log", ident)
    lines = lines_of(p)
    del lines[k]
    put(p, lines)
    for ts in (store, None):
        res = verify_audit_log(p, ts)
        assert not res.ok and res.first_bad_seq == k and "removed, inserted or reordered" in res.reason


@pytest.mark.parametrize("k", [0, 3, N - 2])
def test_reordering_two_entries(tmp_path, keys, k):
    ident, store = keys
    p = build(tmp_path / "a.log", ident)
    lines = lines_of(p)
    lines[k], lines[k + 1] = lines[k + 1], lines[k]
    put(p, lines)
    for ts in (store, None):
        res = verify_audit_log(p, ts)
        assert not res.ok and res.first_bad_seq == k


@pytest.mark.parametrize("k", [0, 4, N])
def test_inserting_a_forged_entry(tmp_path, keys, k):
    ident, store = keys
    p = build(tmp_path / "a.log", ident)
    lines = lines_of(p)
    prev = json.loads(lines[k - 1])["hash"] if k else GENESIS_HASH
    attacker = NodeIdentity.generate("aus-node", "AUS")
    forged = reseal(
        {"seq": k, "time_s": 150.0, "kind": "release", "details": {"partner": "KOR"}, "node": "aus-node", "prev_hash": prev},
        attacker,
    )
    lines.insert(k, canonical_json(forged))
    put(p, lines)
    res = verify_audit_log(p, store)
    assert not res.ok and res.first_bad_seq == k and "signature" in res.reason
    if k < N:  # without keys, it shows at the next entry (seq k appears twice)
        assert verify_audit_log(p).first_bad_seq == k + 1
    else:  # appended at the end: the head file still ends at N-1
        res = verify_audit_log(p)
        assert not res.ok and res.first_bad_seq == N and "after the last one the head file records" in res.reason


@pytest.mark.parametrize("m", [1, 3, N])
def test_truncating_the_tail(tmp_path, keys, m):
    ident, store = keys
    p = build(tmp_path / "a.log", ident)
    put(p, lines_of(p)[: N - m])
    for ts in (store, None):
        res = verify_audit_log(p, ts)
        assert not res.ok and res.first_bad_seq == N - m and "truncated" in res.reason, res


def test_truncation_detection_limits_and_checkpoint(tmp_path, keys):
    ident, store = keys
    p = build(tmp_path / "a.log", ident, 5)
    old_log, old_head = p.read_bytes(), (tmp_path / "a.log.head").read_bytes()
    checkpoint = AuditLog(p, ident).head()
    with AuditLog(p, identity=ident) as log:
        for i in range(3):
            log.append("release", time_s=300.0 + i, partner="USA")
    newer = AuditLog(p, ident).head()
    assert verify_audit_log(p, store, checkpoint=newer).ok
    # rollback: old log + old (genuine, signed) head: not detectable from the files alone ...
    p.write_bytes(old_log)
    (tmp_path / "a.log.head").write_bytes(old_head)
    assert verify_audit_log(p, store).ok
    assert verify_audit_log(p, store, checkpoint=checkpoint).ok
    # ... but a newer external checkpoint catches it
    res = verify_audit_log(p, store, checkpoint=newer)
    assert not res.ok and res.first_bad_seq == 5 and "checkpoint" in res.reason
    # deleting the head: fine without keys, refused with a trust store
    (tmp_path / "a.log.head").unlink()
    assert verify_audit_log(p).ok
    res = verify_audit_log(p, store)
    assert not res.ok and "head file is missing" in res.reason
    # a forged head (right seq, wrong hash / bad signature)
    (tmp_path / "a.log.head").write_bytes(AuditHead(4, "ab" * 32, "aus-node", checkpoint.sig).to_json())
    assert not verify_audit_log(p, store).ok
    res = verify_audit_log(p)
    assert not res.ok and res.first_bad_seq == 4 and "hash differs from the head file" in res.reason


def test_whole_chain_rewritten(tmp_path, keys):
    ident, store = keys
    p = build(tmp_path / "a.log", ident, 5)
    attacker = NodeIdentity.generate("aus-node", "AUS")
    rewritten = AuditLog(tmp_path / "b.log", identity=attacker)
    for line in lines_of(p):
        e = json.loads(line)
        rewritten.append(e["kind"], time_s=e["time_s"], **{**e["details"], "partner": "KOR"} if e["kind"] == "release" else e["details"])
    rewritten.close()
    shutil.copy(tmp_path / "b.log", p)
    # the old head still names the genuine last entry: caught there even without keys
    assert verify_audit_log(p).first_bad_seq == 4
    # with the head rewritten too, only signatures tell
    shutil.copy(tmp_path / "b.log.head", tmp_path / "a.log.head")
    assert verify_audit_log(p).ok
    res = verify_audit_log(p, store)
    assert not res.ok and res.first_bad_seq == 0 and "signature" in res.reason


def test_incomplete_last_line(tmp_path, keys):
    ident, store = keys
    p = build(tmp_path / "a.log", ident, 4)
    raw = p.read_bytes()
    p.write_bytes(raw[:-10])
    res = verify_audit_log(p, store)
    assert not res.ok and res.first_bad_seq == 3 and "incomplete" in res.reason
    with pytest.raises(InputError, match="last entry"):
        AuditLog(p, ident)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_single_byte_change_is_detected(tmp_path_factory, keys, data):
    ident, store = keys
    d = tmp_path_factory.mktemp("fuzz")
    p = build(d / "a.log", ident, 4)
    raw = bytearray(p.read_bytes())
    i = data.draw(st.integers(0, len(raw) - 1))
    b = data.draw(st.integers(0, 255).filter(lambda x: x != raw[i]))
    raw[i] = b
    p.write_bytes(bytes(raw))
    res = verify_audit_log(p, store)
    assert not res.ok
    line_no = bytes(raw[:i]).count(b"\n")
    assert res.first_bad_seq is not None and res.first_bad_seq <= line_no


def test_append_refuses_bad_input(tmp_path):
    log = AuditLog(tmp_path / "x.log")
    with pytest.raises(ValueError, match="event kind"):
        log.append("Release!")
    with pytest.raises(ValueError, match="NaN"):
        log.append("release", value=float("nan"))
    with pytest.raises(TypeError, match="JSON-serialisable"):
        log.append("release", value=object())
    assert log.append("release", time_s=1.0, ids={3, 1, 2})["details"] == {"ids": [1, 2, 3]}
    log.close()
    assert verify_audit_log(tmp_path / "x.log").entries == 1


@pytest.mark.parametrize(
    "rewrite",
    [
        lambda e: json.dumps(e).encode(),  # same content, spaces after separators
        lambda e: json.dumps(dict(reversed(list(e.items()))), separators=(",", ":")).encode(),  # key order
        lambda e: canonical_json(e).replace(b'"time_s":103.0', b'"time_s":1.03E2'),  # same float, other spelling
    ],
)
def test_same_content_written_differently_is_detected(tmp_path, keys, rewrite):
    ident, store = keys
    p = build(tmp_path / "a.log", ident, 5)
    lines = lines_of(p)
    changed = rewrite(json.loads(lines[3]))
    assert changed != lines[3] and json.loads(changed) == json.loads(lines[3])
    lines[3] = changed
    put(p, lines)
    for ts in (store, None):
        res = verify_audit_log(p, ts)
        assert not res.ok and res.first_bad_seq == 3 and "canonical" in res.reason
