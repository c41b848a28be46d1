"""Append-only, hash-chained (and optionally signed) audit log of what was released or refused.

File format: JSON Lines, one entry per line, each written in canonical form (UTF-8, keys sorted,
separators ``,`` and ``:``, no NaN)::

    {"details":{...},"hash":"<hex>","kind":"release","node":"jpn-node-1","prev_hash":"<hex>",
     "seq":0,"sig":"<base64>","time_s":1767225600.0}

* ``seq`` is the entry's position: 0, 1, 2, ... with no gaps.
* ``prev_hash`` is the previous entry's ``hash`` (64 zeros for entry 0).
* ``hash`` = SHA-256 of the canonical JSON of the entry without ``hash`` and ``sig``.
* ``sig`` (present when the log is written with a :class:`NodeIdentity`) = Ed25519 over
  ``b"siap.sharing.audit.entry.v1\\x00" + bytes.fromhex(hash)``; ``node`` names the signer.

Next to ``LOG`` the writer keeps ``LOG.head``: the seq and hash of the last entry, rewritten
atomically after every append and, with an identity, signed over
``b"siap.sharing.audit.head.v1\\x00" + u64be(seq) + bytes.fromhex(hash)`` (a different domain
than entries, so an entry's signature cannot be passed off as a head).

What :func:`verify_audit_log` detects (``first_bad_seq`` is the position of the first entry that
fails; for a truncated tail it is the first missing seq):

* any field of any entry altered, an entry removed, two entries swapped, a forged entry
  inserted: always detected. Without a trust store the chain alone catches it at the altered
  entry, except when the forger also recomputed that entry's hash, which is then caught at the
  *next* entry (its ``prev_hash`` no longer matches); with a trust store every entry must carry
  a valid signature by a trusted node, so it is caught at the forged entry itself.
* the whole chain rewritten consistently: detected only with a trust store (signatures), or
  when the rewritten tail disagrees with the head file or an external checkpoint.
* the tail truncated: detected when the head file still records a later entry, or when a
  checkpoint (:class:`AuditHead`, e.g. one published to a peer) names an entry that is missing.
  With a trust store the head file is required and must be signed.
* entries appended after the head file's last entry (by anyone but the writer): detected at the
  first of them. (A writer that stops between writing an entry and its head shows the same.)

Not detected: truncation together with restoring an *older* genuine head file (rollback) unless
an external checkpoint newer than it is given; deletion of the whole log and head; anything done
by someone who holds the node's private key; a log written without an identity and rewritten
together with its head.
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

__all__ = ["AuditLog", "AuditHead", "AuditVerification", "verify_audit_log", "read_head", "canonical_json"]

ENTRY_DOMAIN = b"siap.sharing.audit.entry.v1\x00"
HEAD_DOMAIN = b"siap.sharing.audit.head.v1\x00"
GENESIS_HASH = "0" * 64
_KIND_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,31}$")
_FIELDS = {"seq", "time_s", "kind", "details", "node", "prev_hash", "hash"}


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


def _head_message(seq: int, hash_hex: str) -> bytes:
    return HEAD_DOMAIN + struct.pack(">Q", seq) + bytes.fromhex(hash_hex)


@dataclass(frozen=True)
class AuditHead:
    """The seq and hash of a log's last entry, optionally signed (a checkpoint)."""

    seq: int
    hash: str
    node: str | None = None
    sig: str | None = None

    def to_json(self) -> bytes:
        d: dict[str, Any] = {"seq": self.seq, "hash": self.hash}
        if self.node is not None:
            d["node"] = self.node
        if self.sig is not None:
            d["sig"] = self.sig
        return canonical_json(d) + b"\n"


def read_head(path: str | Path) -> AuditHead | None:
    """The head file of log ``path`` (``path.head``), or None if there is none.

    ValueError if it exists but is malformed.
    """
    hp = Path(str(path) + ".head")
    if not hp.exists():
        return None
    d = json.loads(hp.read_text(encoding="utf-8"))
    if not isinstance(d, dict) or not {"seq", "hash"} <= set(d) <= {"seq", "hash", "node", "sig"}:
        raise ValueError(f"{hp}: expected an object with seq, hash[, node, sig]")
    if not isinstance(d["seq"], int) or not re.fullmatch(r"[0-9a-f]{64}", str(d["hash"])):
        raise ValueError(f"{hp}: seq must be an integer and hash 64 hex digits")
    return AuditHead(d["seq"], d["hash"], d.get("node"), d.get("sig"))


class AuditLog:
    """Append-only audit log writer (thread-safe). Reopening continues the existing chain.

    ``identity`` signs every entry and the head file. ``fsync`` forces each append to disk.
    One writer per file: two processes appending to the same log break the chain (verify
    reports it). ``time_s`` is the entry's own field, so it cannot be a detail name.
    """

    def __init__(self, path: str | Path, identity: NodeIdentity | None = None, fsync: bool = False) -> None:
        self.path = Path(path)
        self.identity = identity
        self.fsync = fsync
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._next_seq, self._last_hash = self._resume()
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def _resume(self) -> tuple[int, str]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return 0, GENESIS_HASH
        with open(self.path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            end = fh.tell()
            chunk, pos = b"", end
            while pos > 0 and chunk.rstrip(b"\n").count(b"\n") < 1:
                step = min(65536, pos)
                pos -= step
                fh.seek(pos)
                chunk = fh.read(step) + chunk
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
                "node": self.identity.node_id if self.identity else None,
                "prev_hash": self._last_hash,
            }
            entry["hash"] = _entry_hash(entry)
            if self.identity is not None:
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

    def head(self) -> AuditHead | None:
        """Signed (with an identity) checkpoint of the last entry, e.g. to publish to a peer."""
        if self._next_seq == 0:
            return None
        seq, h = self._next_seq - 1, self._last_hash
        if self.identity is None:
            return AuditHead(seq, h)
        sig = base64.b64encode(self.identity.sign(_head_message(seq, h))).decode("ascii")
        return AuditHead(seq, h, self.identity.node_id, sig)

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
    truncated tail), None when ``ok``; ``reason``: one line.
    """

    ok: bool
    entries: int
    first_bad_seq: int | None
    reason: str


def _check_sig(sig_b64: Any, node: Any, message: bytes, trust_store: TrustStore) -> str | None:
    if not sig_b64 or not node:
        return "unsigned"
    trusted = trust_store.get(str(node))
    if trusted is None:
        return f"signed by unknown node {node!r}"
    try:
        sig = base64.b64decode(str(sig_b64), validate=True)
        if base64.b64encode(sig).decode("ascii") != sig_b64:
            raise ValueError("non-canonical base64")
        trusted.public_key.verify(sig, message)
    except (InvalidSignature, ValueError):
        return f"signature does not verify with the key of {node!r}"
    return None


def verify_audit_log(
    path: str | Path, trust_store: TrustStore | None = None, checkpoint: AuditHead | None = None
) -> AuditVerification:
    """Check the chain, the signatures (with ``trust_store``), the head file and ``checkpoint``.

    See the module docstring for exactly what is and is not detected.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        return AuditVerification(False, 0, 0, f"cannot read {p}: {e.strerror}")

    def bad(n: int, seq: int, why: str) -> AuditVerification:
        return AuditVerification(False, n, seq, f"seq {seq}: {why}")

    lines = raw.split(b"\n")
    partial = lines.pop()  # b"" when the file ends with a newline (or is empty)
    prev = GENESIS_HASH
    hashes: list[str] = []
    for i, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            return bad(i, i, "not valid JSON")
        if not isinstance(entry, dict) or not _FIELDS <= set(entry) <= _FIELDS | {"sig"}:
            return bad(i, i, f"expected the fields {sorted(_FIELDS)} (+ sig)")
        if entry["seq"] != i or isinstance(entry["seq"], bool):
            return bad(i, i, f"entry at this position has seq {entry['seq']!r}: an entry was removed, inserted or reordered")
        if entry["prev_hash"] != prev:
            return bad(i, i, "prev_hash does not match the previous entry's hash: an entry before it was changed, removed or inserted")
        try:
            recomputed = _entry_hash(entry)
        except ValueError:
            return bad(i, i, "entry is not canonical JSON (NaN/inf)")
        if entry["hash"] != recomputed:
            return bad(i, i, "hash does not match the entry's content: the entry was altered")
        if canonical_json(entry) != line:
            return bad(i, i, "entry is not written in canonical form: the line was altered")
        if trust_store is not None:
            why = _check_sig(entry.get("sig"), entry.get("node"), ENTRY_DOMAIN + bytes.fromhex(recomputed), trust_store)
            if why:
                return bad(i, i, f"entry signature: {why}")
        prev = recomputed
        hashes.append(recomputed)
    n = len(hashes)
    if partial:
        return bad(n, n, "incomplete last line (no newline): a write was cut short or the tail was truncated")
    try:
        head = read_head(p)
    except ValueError as e:
        return AuditVerification(False, n, n, f"head file: {e}")
    if head is None and trust_store is not None and n > 0:
        return AuditVerification(False, n, n, "head file is missing (required with a trust store)")
    for name, ck in (("head file", head), ("checkpoint", checkpoint)):
        if ck is None:
            continue
        if trust_store is not None and (name == "head file" or ck.sig is not None):
            why = _check_sig(ck.sig, ck.node, _head_message(ck.seq, ck.hash), trust_store)
            if why:
                return AuditVerification(False, n, n, f"head file signature: {why}")
        if ck.seq >= n:
            return AuditVerification(
                False, n, n, f"seq {n}: log ends at seq {n - 1} but the {name} records seq {ck.seq}: tail truncated"
            )
        if hashes[ck.seq] != ck.hash:
            return bad(ck.seq, ck.seq, f"hash differs from the {name}: the chain was rewritten")
        if name == "head file" and ck.seq < n - 1:
            return bad(
                ck.seq + 1, ck.seq + 1,
                f"{n - 1 - ck.seq} entries after the last one the head file records: appended by someone "
                "other than the writer (or the writer stopped between writing the entry and the head)",
            )
    return AuditVerification(True, n, None, f"{n} entries verified" + (" with signatures" if trust_store else ""))
