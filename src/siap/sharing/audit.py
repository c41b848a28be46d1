"""Append-only, hash-chained, signed audit log of what was released or refused, that an
inspector can check against anchors the log's writer does not control.

File format: JSON Lines, one entry per line, each written in canonical form (UTF-8, keys sorted,
separators ``,`` and ``:``, no NaN)::

    {"details":{...},"hash":"<hex>","kind":"release","node":"JPN-node","prev_hash":"<hex>",
     "seq":0,"sig":"<base64>","time_s":1767225600.0}

* ``seq`` is the entry's position: 0, 1, 2, ... with no gaps.
* ``prev_hash`` is the previous entry's ``hash``; for entry 0 it is the log's *genesis*:
  SHA-256(``b"siap.sharing.audit.genesis.v2\\x00" + node + b"\\x00" + run``), so every hash of
  the chain binds the node that writes it and the run it belongs to (:func:`genesis_hash`).
* ``hash`` = SHA-256 of the canonical JSON of the entry without ``hash`` and ``sig``.
* ``sig`` = Ed25519 by the node over ``b"siap.sharing.audit.entry.v1\\x00" + bytes.fromhex(hash)``;
  ``node`` names the signer and must be the log's node in every entry.

A *head* (:class:`AuditHead`) is the node, run, seq and hash of the last entry, signed over
``b"siap.sharing.audit.head.v2\\x00" + u8 len(node) + node + u8 len(run) + run + u64be(seq) +
hash`` (a domain of its own: an entry signature cannot pass for a head). The writer keeps a copy
in ``LOG.head`` for convenience; verification never trusts what lies beside the log. Heads are
anchored elsewhere: given to :func:`verify_audit_log` explicitly (``heads``), or recorded as
``peer_head`` entries in other nodes' logs (``anchors``; :meth:`AuditLog.record_peer_head`, done
by every coalition node at the end of a run).

:func:`verify_audit_log` takes the trust anchor from the caller (the verifier's own pinned
keys), the node and the run the log must belong to. It finds (each tested, see
docs/security.md): an entry edited (any byte), deleted, swapped or inserted; the tail truncated
or entries appended after the last anchored head; the chain rewritten and re-signed with another
key (whatever trust file lies beside the log); a genuine log of another node, or of another run
of the same node, put in its place; a log with no anchor at all is not accepted
(``require_anchor``). Not detected: anything done by someone holding the node's private key
*before* a head was anchored elsewhere; entries after the last anchored head other than
``peer_head`` entries are reported as unanchored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidSignature

from siap.errors import InputError
from siap.sharing.labels import Label
from siap.sharing.signing import NodeIdentity, TrustStore

__all__ = [
    "AuditLog",
    "AuditHead",
    "AuditVerification",
    "verify_audit_log",
    "verify_coalition_audit",
    "peer_heads",
    "read_head",
    "genesis_hash",
    "canonical_json",
]

ENTRY_DOMAIN = b"siap.sharing.audit.entry.v1\x00"
HEAD_DOMAIN = b"siap.sharing.audit.head.v2\x00"
GENESIS_DOMAIN = b"siap.sharing.audit.genesis.v2\x00"
PEER_HEAD_KIND = "peer_head"
_KIND_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,31}$")
_RUN_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_FIELDS = {"seq", "time_s", "kind", "details", "node", "prev_hash", "hash", "sig"}


def genesis_hash(node: str, run_id: str) -> str:
    """``prev_hash`` of entry 0 of node ``node``'s log of run ``run_id`` (binds the chain to both)."""
    return hashlib.sha256(GENESIS_DOMAIN + node.encode("ascii") + b"\x00" + run_id.encode("ascii")).hexdigest()


def _check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_RE.match(run_id):
        raise ValueError(f"bad run id {run_id!r}; expected 1-64 of A-Z a-z 0-9 _ . -")
    return run_id


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON bytes: UTF-8, sorted keys, no whitespace, NaN/inf refused."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, set | frozenset):
        return sorted(x)
    if isinstance(x, Label):
        return x.format()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"audit details must be JSON-serialisable; got {type(x).__name__}")


def _entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k not in ("hash", "sig")}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _head_message(node: str, run_id: str, seq: int, hash_hex: str) -> bytes:
    nb, rb = node.encode("ascii"), run_id.encode("ascii")
    return HEAD_DOMAIN + bytes([len(nb)]) + nb + bytes([len(rb)]) + rb + struct.pack(">Q", seq) + bytes.fromhex(hash_hex)


@dataclass(frozen=True)
class AuditHead:
    """Node, run, seq and hash of a log's last entry, signed by the node (a checkpoint)."""

    node: str
    run: str
    seq: int
    hash: str
    sig: str

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "run": self.run, "seq": self.seq, "hash": self.hash, "sig": self.sig}

    def to_json(self) -> bytes:
        return canonical_json(self.as_dict()) + b"\n"

    @classmethod
    def from_dict(cls, d: Any, where: str) -> AuditHead:
        """ValueError (naming ``where``) unless ``d`` has exactly the fields of a head."""
        if not isinstance(d, dict) or set(d) != {"node", "run", "seq", "hash", "sig"}:
            raise ValueError(f"{where}: expected an object with exactly node, run, seq, hash, sig")
        if not isinstance(d["seq"], int) or isinstance(d["seq"], bool) or d["seq"] < 0:
            raise ValueError(f"{where}: seq: expected a non-negative integer")
        if not isinstance(d["hash"], str) or not re.fullmatch(r"[0-9a-f]{64}", d["hash"]):
            raise ValueError(f"{where}: hash: expected 64 lower-case hex digits")
        if not all(isinstance(d[k], str) for k in ("node", "run", "sig")) or not _RUN_RE.match(d["run"]):
            raise ValueError(f"{where}: node, run, sig: expected text (run: 1-64 of A-Z a-z 0-9 _ . -)")
        if not d["node"].isascii():
            raise ValueError(f"{where}: node: expected ASCII")
        return cls(d["node"], d["run"], d["seq"], d["hash"], d["sig"])


def read_head(path: str | Path) -> AuditHead:
    """A head saved as JSON (e.g. a copy of ``LOG.head`` kept by an inspector or a peer).

    ValueError (one line, naming the file) if it cannot be read or is not a head.
    """
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: expected a siap audit head (JSON) ({e})") from None
    return AuditHead.from_dict(d, str(p))


class AuditLog:
    """Append-only audit log writer (thread-safe) of node ``identity`` for run ``run_id``.

    Reopening continues the existing chain (InputError if the file belongs to another node or
    run, or its tail is damaged). ``fsync`` forces each append to disk. One writer per file.
    ``time_s`` is the entry's own field, so it cannot be a detail name.
    """

    def __init__(self, path: str | Path, identity: NodeIdentity, run_id: str, fsync: bool = False) -> None:
        if not isinstance(identity, NodeIdentity):
            raise TypeError("an audit log is written by a node: pass its NodeIdentity")
        self.path = Path(path)
        self.identity = identity
        self.run_id = _check_run_id(run_id)
        self.genesis = genesis_hash(identity.node_id, run_id)
        self.fsync = fsync
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._next_seq, self._last_hash = self._resume()
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def _resume(self) -> tuple[int, str]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return 0, self.genesis
        with open(self.path, "rb") as fh:
            first = fh.readline()
            fh.seek(0, os.SEEK_END)
            end = fh.tell()
            chunk, pos = b"", end
            while pos > 0 and chunk.rstrip(b"\n").count(b"\n") < 1:
                step = min(65536, pos)
                pos -= step
                fh.seek(pos)
                chunk = fh.read(step) + chunk
        try:
            e0 = json.loads(first)
            ours = isinstance(e0, dict) and e0.get("prev_hash") == self.genesis and e0.get("node") == self.identity.node_id
        except ValueError:
            ours = False
        if not ours:
            raise InputError(
                f"{self.path}: seq 0: expected a log of node {self.identity.node_id} run {self.run_id} "
                "(this file belongs to another node or run; use a new file)"
            )
        if not chunk.endswith(b"\n"):
            raise InputError(f"{self.path}: last entry: expected a complete line (file ends mid-entry; run verify)")
        last = chunk.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        try:
            entry = json.loads(last)
            ok = isinstance(entry, dict) and entry.get("hash") == _entry_hash(entry)
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise InputError(f"{self.path}: last entry: expected a valid hash-chained audit entry (run verify)")
        return int(entry["seq"]) + 1, str(entry["hash"])

    def append(self, kind: str, time_s: float | None = None, **details: Any) -> dict[str, Any]:
        """Append one entry (``time_s`` defaults to now) and return it as written."""
        if not _KIND_RE.match(kind):
            raise ValueError(f"bad audit event kind {kind!r}; expected e.g. 'release' or 'reject'")
        t = time.time() if time_s is None else float(time_s)
        if not math.isfinite(t):
            raise ValueError(f"audit time_s must be finite (got {t})")
        try:
            details_n = json.loads(json.dumps(details, default=_jsonable, allow_nan=False))
        except ValueError as e:
            raise ValueError(f"audit details must not contain NaN or infinity ({e})") from None
        with self._lock:
            entry: dict[str, Any] = {
                "seq": self._next_seq,
                "time_s": t,
                "kind": kind,
                "details": details_n,
                "node": self.identity.node_id,
                "prev_hash": self._last_hash,
            }
            entry["hash"] = _entry_hash(entry)
            sig = self.identity.sign(ENTRY_DOMAIN + bytes.fromhex(entry["hash"]))
            entry["sig"] = base64.b64encode(sig).decode("ascii")
            self._fh.write(canonical_json(entry).decode("utf-8") + "\n")
            self._fh.flush()
            if self.fsync:
                os.fsync(self._fh.fileno())
            self._next_seq += 1
            self._last_hash = entry["hash"]
            self._write_head()
        return entry

    def record_peer_head(self, head: AuditHead, time_s: float | None = None) -> dict[str, Any]:
        """Record another node's head in this log (a ``peer_head`` entry): this log becomes an
        anchor for that one (``verify_audit_log(..., anchors=[this log])``)."""
        return self.append(PEER_HEAD_KIND, time_s=time_s, head=head.as_dict())

    def head(self) -> AuditHead | None:
        """Signed checkpoint of the last entry, to hand to a peer or an inspector."""
        if self._next_seq == 0:
            return None
        seq, h = self._next_seq - 1, self._last_hash
        node = self.identity.node_id
        sig = base64.b64encode(self.identity.sign(_head_message(node, self.run_id, seq, h))).decode("ascii")
        return AuditHead(node, self.run_id, seq, h, sig)

    def _write_head(self) -> None:
        head = self.head()
        assert head is not None
        hp = Path(str(self.path) + ".head")
        tmp = hp.with_name(hp.name + ".tmp")
        tmp.write_bytes(head.to_json())
        os.replace(tmp, hp)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class AuditVerification:
    """Result of :func:`verify_audit_log`.

    ``entries``: number of entries that verified before the first failure (all of them when
    ``ok``); ``first_bad_seq``: position of the first bad entry (first missing seq for a
    truncated tail), None when ``ok``; ``reason``: one line; ``anchored_seq``: the highest seq
    an anchor vouches for (None if none).
    """

    ok: bool
    entries: int
    first_bad_seq: int | None
    reason: str
    anchored_seq: int | None = None


def _check_sig(sig_b64: Any, node: str, message: bytes, trust_store: TrustStore) -> str | None:
    if not sig_b64:
        return "unsigned"
    trusted = trust_store.get(node)
    if trusted is None:
        return f"node {node!r} is not in the trust store"
    try:
        sig = base64.b64decode(str(sig_b64), validate=True)
        if base64.b64encode(sig).decode("ascii") != sig_b64:
            raise ValueError("non-canonical base64")
        trusted.public_key.verify(sig, message)
    except (InvalidSignature, ValueError):
        return f"signature does not verify with the pinned key of {node!r}"
    return None


def _head_signature_error(h: AuditHead, trust_store: TrustStore) -> str | None:
    try:
        msg = _head_message(h.node, h.run, h.seq, h.hash)
    except (ValueError, UnicodeEncodeError, struct.error):
        return "malformed head"
    return _check_sig(h.sig, h.node, msg, trust_store)


def _read_entries(p: Path) -> tuple[list[bytes], bytes] | str:
    try:
        raw = p.read_bytes()
    except OSError as e:
        return f"cannot read {p}: {e.strerror}"
    lines = raw.split(b"\n")
    partial = lines.pop()  # b"" when the file ends with a newline (or is empty)
    return lines, partial


def peer_heads(anchor: str | Path, trust_store: TrustStore, node: str, run_id: str) -> list[AuditHead]:
    """The genuine heads of ``node``'s log of ``run_id`` recorded in the log ``anchor`` (another
    node's): ``peer_head`` entries whose own entry signature is by the anchor's writer and whose
    head signature is by ``node`` (both with pinned keys). Unreadable lines are skipped: the
    anchor log is verified on its own."""
    got = _read_entries(Path(anchor))
    if isinstance(got, str):
        return []
    out = []
    for line in got[0]:
        try:
            e = json.loads(line)
            if not isinstance(e, dict) or e.get("kind") != PEER_HEAD_KIND or e.get("node") == node:
                continue
            if e.get("hash") != _entry_hash(e) or _check_sig(
                e.get("sig"), str(e.get("node")), ENTRY_DOMAIN + bytes.fromhex(e["hash"]), trust_store
            ):
                continue
            h = AuditHead.from_dict(e["details"]["head"], "peer_head")
        except (ValueError, TypeError, KeyError):
            continue
        if h.node == node and h.run == run_id and _head_signature_error(h, trust_store) is None:
            out.append(h)
    return out


def verify_audit_log(
    path: str | Path,
    trust_store: TrustStore,
    *,
    node: str,
    run_id: str,
    heads: tuple[AuditHead, ...] | list[AuditHead] = (),
    anchors: tuple[str | Path, ...] | list[str | Path] = (),
    require_anchor: bool = True,
) -> AuditVerification:
    """Check ``node``'s log of run ``run_id`` at ``path``: chain, order, canonical form, every
    signature against ``trust_store`` (the verifier's own pinned keys, never a file beside the
    log), then against the anchored heads: ``heads`` given explicitly and the ``peer_head``
    entries for this log in the ``anchors`` (other nodes' logs).

    Every head must match the chain; the newest must be the last entry (entries after it are
    accepted only if they are ``peer_head`` records, which carry no release decision) and no head
    may lie beyond the end (truncation). With ``require_anchor`` a log with no head anchored
    anywhere is not ok (its tail could be cut unnoticed).
    """
    p = Path(path)
    if trust_store.get(node) is None:
        return AuditVerification(False, 0, 0, f"node {node!r} is not in the trust store: no key to verify its log with")
    got = _read_entries(p)
    if isinstance(got, str):
        return AuditVerification(False, 0, 0, got)
    lines, partial = got

    def bad(n: int, seq: int, why: str) -> AuditVerification:
        return AuditVerification(False, n, seq, f"seq {seq}: {why}")

    prev = genesis_hash(node, run_id)
    hashes: list[str] = []
    kinds: list[str] = []
    for i, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            return bad(i, i, "not valid JSON")
        if not isinstance(entry, dict) or set(entry) != _FIELDS:
            return bad(i, i, f"expected exactly the fields {sorted(_FIELDS)}")
        if entry["seq"] != i or isinstance(entry["seq"], bool):
            return bad(i, i, f"entry at this position has seq {entry['seq']!r}: an entry was removed, inserted or reordered")
        if entry["node"] != node:
            return bad(i, i, f"written by {entry['node']!r}, expected {node!r}: another node's log or entry")
        if entry["prev_hash"] != prev:
            why = (
                f"the chain does not start from node {node!r} run {run_id!r}: a log of another node or run"
                if i == 0
                else "prev_hash does not match the previous entry's hash: an entry before it was changed, removed or inserted"
            )
            return bad(i, i, why)
        try:
            recomputed = _entry_hash(entry)
        except ValueError:
            return bad(i, i, "entry is not canonical JSON (NaN/inf)")
        if entry["hash"] != recomputed:
            return bad(i, i, "hash does not match the entry's content: the entry was altered")
        if canonical_json(entry) != line:
            return bad(i, i, "entry is not written in canonical form: the line was altered")
        why = _check_sig(entry.get("sig"), node, ENTRY_DOMAIN + bytes.fromhex(recomputed), trust_store)
        if why:
            return bad(i, i, f"entry signature: {why}")
        prev = recomputed
        hashes.append(recomputed)
        kinds.append(str(entry["kind"]))
    n = len(hashes)
    if partial:
        return bad(n, n, "incomplete last line (no newline): a write was cut short or the tail was truncated")
    checkpoints: list[tuple[str, AuditHead]] = []
    for h in heads:
        if (h.node, h.run) != (node, run_id):
            return AuditVerification(False, n, n, f"given head is of node {h.node!r} run {h.run!r}, not of this log")
        why = _head_signature_error(h, trust_store)
        if why:
            return AuditVerification(False, n, n, f"given head signature: {why}")
        checkpoints.append(("given head", h))
    for a in anchors:
        checkpoints += [(f"head recorded in {Path(a).name}", h) for h in peer_heads(a, trust_store, node, run_id)]
    if not checkpoints:
        if require_anchor:
            return AuditVerification(
                False, n, n, "no head anchored outside the log (pass a head or a peer's log): truncation could not be detected"
            )
        return AuditVerification(True, n, None, f"{n} entries verified with signatures (unanchored)")
    for where, ck in checkpoints:
        if ck.seq >= n:
            return AuditVerification(False, n, n, f"seq {n}: log ends at seq {n - 1} but the {where} records seq {ck.seq}: tail truncated")
        if hashes[ck.seq] != ck.hash:
            return bad(ck.seq, ck.seq, f"hash differs from the {where}: the chain was rewritten")
    top = max(ck.seq for _, ck in checkpoints)
    extra = [i for i in range(top + 1, n) if kinds[i] != PEER_HEAD_KIND]
    if extra:
        return AuditVerification(
            False, extra[0], extra[0],
            f"seq {extra[0]}: {n - 1 - top} entries after the last anchored head (seq {top}): appended, or not yet anchored",
            top,
        )
    return AuditVerification(True, n, None, f"{n} entries verified with signatures, anchored up to seq {top}", top)


def verify_coalition_audit(
    logs: dict[str, str | Path], trust_store: TrustStore, run_id: str
) -> dict[str, AuditVerification]:
    """Verify every node's log of a run (``logs``: node id -> path), each anchored by the heads
    the others recorded of it."""
    return {
        node: verify_audit_log(path, trust_store, node=node, run_id=run_id, anchors=[q for m, q in logs.items() if m != node])
        for node, path in logs.items()
    }
