"""Signed provenance of every shared message: Ed25519 envelopes, trust store, verifier.

A node signs what it shares with its Ed25519 key (RFC 8032, via ``cryptography``); receivers
verify against a :class:`TrustStore` of coalition node keys and a :class:`~siap.sharing.policy.Policy`.

Signed message (the exact bytes Ed25519 signs; all integers big-endian)::

    b"siap.sharing.envelope.v2\\x00"        25 bytes, domain separation
    u8  len(origin_node)  || origin_node   ASCII, 1..64 bytes
    origin_partner                         3 bytes ASCII (ISO 3166-1 alpha-3)
    recipient                              3 bytes ASCII: the partner it is addressed to
    u64 seq                                per origin node, strictly increasing
    f64 time_s                             IEEE 754 binary64, creation time, Unix s UTC
    u8  len(label)        || label         ASCII canonical label text, 1..64 bytes
    u8  len(kind)         || kind          ASCII, e.g. "tracks", "plots"
    u32 len(payload)
    SHA-256(payload)                       32 bytes

Wire form of an envelope (:meth:`SignedEnvelope.to_bytes`)::

    b"SIAPENV2"                            8 bytes magic
    u8 len(origin_node) || origin_node || origin_partner(3) || recipient(3) || u64 seq || f64 time_s
    || u8 len(label) || label || u8 len(kind) || kind
    u32 len(payload)      || payload       Arrow IPC stream of one record batch
    digest                                 32 bytes: SHA-256 of the signed message
    u8  len(signature)    || signature     0 (unsigned) or 64 bytes

``digest`` is not a security mechanism (the signature is); it lets the verifier tell a message
whose content changed after it was sealed ("altered") from a self-consistent message whose
signature does not verify ("forged": wrong key, forged signature, or tampering that also
recomputed the digest). Both are rejected either way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import struct
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from siap.errors import ConfigError
from siap.records import PLOT_DTYPE, TRACK_DTYPE, to_arrow
from siap.sharing.content import decode_strict, implausible_plots, implausible_tracks
from siap.sharing.labels import LABEL_MAX_CHARS, NATIONS, Label, dominates, parse_cached
from siap.sharing.policy import Policy, split_sources

if TYPE_CHECKING:
    from siap.sharing.audit import AuditLog

__all__ = [
    "ENVELOPE_DOMAIN",
    "WIRE_MAGIC",
    "NodeIdentity",
    "TrustedNode",
    "TrustStore",
    "SignedEnvelope",
    "Signer",
    "Verifier",
    "RejectReason",
    "RejectedMessage",
    "encode_batch",
    "decode_batch",
]

log = logging.getLogger("siap.sharing")

ENVELOPE_DOMAIN = b"siap.sharing.envelope.v2\x00"
WIRE_MAGIC = b"SIAPENV2"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a 10 000-track snapshot is about 5 MB
SEQ_RESERVE_BLOCK = 1024  # sequence numbers a Signer reserves (persists) at a time
SIGNATURE_BYTES = 64
_NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KIND_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,31}$")
_KIND_DTYPES = {"plots": PLOT_DTYPE, "tracks": TRACK_DTYPE}


def _check_node_id(node_id: str) -> str:
    if not isinstance(node_id, str) or not _NODE_RE.match(node_id):
        raise ValueError(f"bad node id {node_id!r}; expected 1-64 of A-Z a-z 0-9 _ . - starting alphanumeric")
    return node_id


def _check_partner(partner: str) -> str:
    if partner not in NATIONS:
        raise ValueError(f"bad partner {partner!r}; expected an ISO 3166-1 alpha-3 code such as JPN")
    return partner


# ---------------------------------------------------------------------------------------
# Batches <-> Arrow IPC bytes
# ---------------------------------------------------------------------------------------
def encode_batch(batch: np.ndarray) -> bytes:
    """Arrow IPC stream bytes of a record batch (via :func:`siap.records.to_arrow`)."""
    table = to_arrow(batch)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode_batch(data: bytes, dtype: np.dtype | None = None) -> np.ndarray:
    """Inverse of :func:`encode_batch`, strict (:func:`siap.sharing.content.decode_strict`).

    ``dtype`` defaults to the one the stream's schema names. ValueError (and nothing else) if
    the bytes are not exactly a siap record batch of that dtype.
    """
    if dtype is None:
        try:
            meta = pa.ipc.open_stream(pa.py_buffer(data)).schema.metadata or {}
            dtype = _KIND_DTYPES[meta.get(b"siap.dtype", b"").decode("ascii", "replace")]
        except Exception as e:  # noqa: BLE001 - hostile bytes: pyarrow raises OSError and others
            raise ValueError(f"payload is not a siap record batch in Arrow IPC form: {type(e).__name__}: {e}") from None
    return decode_strict(data, dtype)


# ---------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeIdentity:
    """A node's signing identity: its id, its partner nation and its Ed25519 private key."""

    node_id: str
    partner: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        _check_node_id(self.node_id)
        _check_partner(self.partner)

    @classmethod
    def generate(cls, node_id: str, partner: str) -> NodeIdentity:
        return cls(node_id, partner, Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    def private_pem(self) -> bytes:
        """PKCS#8 PEM of the private key (unencrypted: protect the file)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def save_private_key(self, path: str | Path) -> None:
        """Write the private key PEM with mode 0600."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(self.private_pem())
        p.chmod(0o600)

    @classmethod
    def load(cls, path: str | Path, node_id: str, partner: str) -> NodeIdentity:
        """Read a PKCS#8 PEM Ed25519 private key; ConfigError if it is not one."""
        try:
            key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as e:
            raise ConfigError(f"{path}: private_key: expected an unencrypted PEM Ed25519 key (got {e})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path}: private_key: expected an Ed25519 key (got {type(key).__name__})")
        return cls(node_id, partner, key)

    def trusted(self) -> TrustedNode:
        """The public half, for a trust store."""
        return TrustedNode(self.node_id, self.partner, self.public_key)


def _public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _load_public_pem(data: bytes, where: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: public_key: expected a PEM Ed25519 public key (got {e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{where}: public_key: expected an Ed25519 key (got {type(key).__name__})")
    return key


@dataclass(frozen=True)
class TrustedNode:
    """A coalition node the receiver trusts: id, partner nation, Ed25519 public key."""

    node_id: str
    partner: str
    public_key: Ed25519PublicKey

    def __post_init__(self) -> None:
        _check_node_id(self.node_id)
        _check_partner(self.partner)


class TrustStore:
    """Node id -> (partner, public key). Saved as YAML or as a directory ``PARTNER/NODE.pem``.

    YAML form::

        nodes:
          jpn-node-1:
            partner: JPN
            public_key: |
              -----BEGIN PUBLIC KEY-----
              ...
    """

    def __init__(self, nodes: Iterable[TrustedNode | NodeIdentity] = ()) -> None:
        self._nodes: dict[str, TrustedNode] = {}
        for n in nodes:
            self.add(n)

    def add(self, node: TrustedNode | NodeIdentity) -> None:
        """Add a node (a private identity is reduced to its public half). ValueError on a clash."""
        t = node.trusted() if isinstance(node, NodeIdentity) else node
        old = self._nodes.get(t.node_id)
        if old is not None and (old.partner != t.partner or _public_pem(old.public_key) != _public_pem(t.public_key)):
            raise ValueError(f"node {t.node_id!r} is already trusted with a different key or partner")
        self._nodes[t.node_id] = t

    def get(self, node_id: str) -> TrustedNode | None:
        return self._nodes.get(node_id)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[TrustedNode]:
        return iter(self._nodes[k] for k in sorted(self._nodes))

    def save(self, path: str | Path) -> None:
        """``*.yaml``/``*.yml``: one YAML file; otherwise a directory of ``PARTNER/NODE.pem``."""
        p = Path(path)
        if p.suffix in (".yaml", ".yml"):
            doc = {"nodes": {t.node_id: {"partner": t.partner, "public_key": _public_pem(t.public_key)} for t in self}}
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(yaml.safe_dump(doc, sort_keys=True), encoding="utf-8")
            return
        for t in self:
            (p / t.partner).mkdir(parents=True, exist_ok=True)
            (p / t.partner / f"{t.node_id}.pem").write_text(_public_pem(t.public_key), encoding="ascii")

    @classmethod
    def load(cls, path: str | Path) -> TrustStore:
        """Inverse of :meth:`save`; ConfigError (one line) on a bad file or key."""
        p = Path(path)
        store = cls()
        if p.is_dir():
            for pem in sorted(p.glob("*/*.pem")):
                where = str(pem)
                try:
                    store.add(TrustedNode(pem.stem, pem.parent.name, _load_public_pem(pem.read_bytes(), where)))
                except ValueError as e:
                    raise ConfigError(f"{where}: node: expected PARTNER/NODE_ID.pem ({e})") from None
            if not len(store):
                raise ConfigError(f"{p}: (trust store): expected PARTNER/NODE_ID.pem public keys in this folder, found none")
            return store
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"{p}: (file): expected a readable trust store (got {e.strerror})") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: (yaml): expected valid YAML (got {e})") from None
        nodes = doc.get("nodes") if isinstance(doc, dict) else None
        if not isinstance(nodes, dict) or set(doc) != {"nodes"}:
            raise ConfigError(f"{p}: nodes: expected a mapping 'nodes: {{NODE_ID: {{partner, public_key}}}}' only")
        for node_id, entry in nodes.items():
            where = f"{p}: nodes.{node_id}"
            if not isinstance(entry, dict) or set(entry) != {"partner", "public_key"}:
                raise ConfigError(f"{where}: expected exactly the keys partner, public_key (got {entry!r:.60})")
            key = _load_public_pem(str(entry["public_key"]).encode(), f"{p}: nodes.{node_id}")
            try:
                store.add(TrustedNode(str(node_id), str(entry["partner"]), key))
            except ValueError as e:
                raise ConfigError(f"{where}: expected a valid node id and partner ({e})") from None
        return store


# ---------------------------------------------------------------------------------------
# Envelope
# ---------------------------------------------------------------------------------------
def _ascii(s: str, what: str, max_len: int) -> bytes:
    try:
        b = s.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {s!r} must be ASCII") from None
    if not 1 <= len(b) <= max_len:
        raise ValueError(f"{what} {s!r} must be 1..{max_len} bytes")
    return b


def _fields_bytes(node: str, partner: str, recipient: str, seq: int, time_s: float, label: str, kind: str) -> bytes:
    nb = _ascii(node, "origin node", 64)
    pb = _ascii(partner, "origin partner", 3)
    rb = _ascii(recipient, "recipient", 3)
    if len(pb) != 3 or len(rb) != 3:
        raise ValueError(f"origin partner {partner!r} and recipient {recipient!r} must be 3 letters")
    lb = _ascii(label, "label", LABEL_MAX_CHARS)
    kb = _ascii(kind, "kind", 32)
    if not 0 <= seq < 2**64:
        raise ValueError(f"sequence number {seq} must be in [0, 2**64)")
    return (
        struct.pack(">B", len(nb)) + nb + pb + rb + struct.pack(">Qd", seq, time_s)
        + struct.pack(">B", len(lb)) + lb + struct.pack(">B", len(kb)) + kb
    )


@dataclass(frozen=True)
class SignedEnvelope:
    """A shared message with its provenance. Build with :meth:`seal` or a :class:`Signer`."""

    origin_node: str
    origin_partner: str
    recipient: str  # the partner the envelope is addressed to (signed: redirection is detected)
    seq: int
    time_s: float
    label: str
    kind: str
    payload: bytes
    digest: bytes = b""  # SHA-256 of signed_message() when sealed
    signature: bytes = b""  # Ed25519 over signed_message(); b"" = unsigned

    def signed_message(self) -> bytes:
        """The exact bytes the signature covers (see module doc)."""
        return (
            ENVELOPE_DOMAIN
            + _fields_bytes(
                self.origin_node, self.origin_partner, self.recipient, self.seq, self.time_s, self.label, self.kind
            )
            + struct.pack(">I", len(self.payload))
            + hashlib.sha256(self.payload).digest()
        )

    @classmethod
    def seal(
        cls, identity: NodeIdentity, *, recipient: str, seq: int, time_s: float, label: str | Label, kind: str,
        payload: bytes,
    ) -> SignedEnvelope:
        """Sign ``payload`` and its metadata as ``identity``, addressed to partner ``recipient``
        (label is written canonically)."""
        _check_partner(recipient)
        text = label.format() if isinstance(label, Label) else parse_cached(label).format()
        if not _KIND_RE.match(kind):
            raise ValueError(f"bad message kind {kind!r}; expected e.g. 'tracks' or 'plots'")
        if not math.isfinite(time_s):
            raise ValueError(f"time_s must be finite (got {time_s})")
        env = cls(identity.node_id, identity.partner, recipient, int(seq), float(time_s), text, kind, bytes(payload))
        msg = env.signed_message()
        return dataclasses.replace(env, digest=hashlib.sha256(msg).digest(), signature=identity.sign(msg))

    def to_bytes(self) -> bytes:
        """Wire form (see module doc)."""
        if len(self.digest) not in (0, 32) or len(self.signature) > 255:
            raise ValueError("digest must be 32 bytes and signature at most 255 bytes")
        digest = self.digest if self.digest else bytes(32)
        return (
            WIRE_MAGIC
            + _fields_bytes(
                self.origin_node, self.origin_partner, self.recipient, self.seq, self.time_s, self.label, self.kind
            )
            + struct.pack(">I", len(self.payload)) + self.payload
            + digest + struct.pack(">B", len(self.signature)) + self.signature
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedEnvelope:
        """Parse the wire form strictly; ValueError on truncation, trailing bytes or bad fields."""
        r = _Reader(bytes(data))
        if r.take(8) != WIRE_MAGIC:
            raise ValueError("not a siap envelope (bad magic)")
        node = r.take(r.u8()).decode("ascii")
        partner = r.take(3).decode("ascii")
        recipient = r.take(3).decode("ascii")
        seq, time_s = struct.unpack(">Qd", r.take(16))
        label = r.take(r.u8()).decode("ascii")
        kind = r.take(r.u8()).decode("ascii")
        (n,) = struct.unpack(">I", r.take(4))
        payload = r.take(n)
        digest = r.take(32)
        signature = r.take(r.u8())
        if r.pos != len(r.data):
            raise ValueError(f"{len(r.data) - r.pos} trailing bytes after the envelope")
        return cls(node, partner, recipient, seq, time_s, label, kind, payload, digest, signature)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated envelope")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]


def _write_json_atomic(path: Path, obj: dict) -> None:
    """Write ``obj`` as JSON to ``path`` so that a crash leaves the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_state(path: Path, expect: dict[str, str]) -> dict | None:
    """The JSON state file at ``path`` (None if absent); ConfigError if it is unreadable or was
    written for another node/partner (``expect``: key -> required value)."""
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: (state): expected a siap sequence state file (got {e})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: (state): expected a JSON object")
    for key, value in expect.items():
        if doc.get(key) != value:
            raise ConfigError(f"{path}: {key}: expected {value!r}, the state file belongs to {doc.get(key)!r}")
    return doc


class Signer:
    """Seals messages for one node, numbering them strictly increasingly.

    Sequence numbers must keep increasing across restarts, or partners reject the restarted
    node's messages as replays. With ``state_path`` the signer persists a high-water mark: it
    reserves :data:`SEQ_RESERVE_BLOCK` numbers at a time (written, fsynced, before any of them
    is used) and a restarted signer continues above everything it may have used. Without one,
    ``first_seq`` defaults to microseconds since the Unix epoch at construction (increasing
    across restarts as long as the clock does not step back); pass an explicit ``first_seq``
    for reproducible runs (a persisted mark above it wins).
    """

    def __init__(self, identity: NodeIdentity, first_seq: int | None = None, state_path: str | Path | None = None) -> None:
        self.identity = identity
        self.next_seq = int(time.time() * 1e6) if first_seq is None else int(first_seq)
        self.state_path = Path(state_path) if state_path is not None else None
        self._reserved = 0
        if self.state_path is not None:
            doc = _read_state(self.state_path, {"node": identity.node_id})
            if doc is not None:
                mark = doc.get("reserved_seq")
                if not isinstance(mark, int) or mark < 0:
                    raise ConfigError(f"{self.state_path}: reserved_seq: expected a non-negative integer")
                self.next_seq = max(self.next_seq, mark)
            self._reserve()

    def _reserve(self) -> None:
        assert self.state_path is not None
        self._reserved = self.next_seq + SEQ_RESERVE_BLOCK
        _write_json_atomic(self.state_path, {"node": self.identity.node_id, "reserved_seq": self._reserved})

    def sign(
        self, payload: bytes, *, label: str | Label, kind: str, recipient: str, time_s: float | None = None
    ) -> SignedEnvelope:
        """Seal raw payload bytes for partner ``recipient`` under the next sequence number."""
        if self.state_path is not None and self.next_seq >= self._reserved:
            self._reserve()
        env = SignedEnvelope.seal(
            self.identity, recipient=recipient, seq=self.next_seq, time_s=time.time() if time_s is None else time_s,
            label=label, kind=kind, payload=payload,
        )
        self.next_seq += 1
        return env

    def sign_batch(
        self, batch: np.ndarray, kind: str | None = None, time_s: float | None = None, *, recipient: str
    ) -> list[SignedEnvelope]:
        """Seal a plot or track batch for partner ``recipient``: one envelope per distinct row
        label, rows in order.

        Every row of an envelope carries exactly the envelope's label (the verifier insists).
        ValueError if a row is unlabelled or its label does not parse.
        """
        if kind is None:
            kind = next((k for k, d in _KIND_DTYPES.items() if d == batch.dtype), None)
            if kind is None:
                raise ValueError("kind must be given for a batch that is neither plots nor tracks")
        if len(batch) == 0:
            return []
        uniq, inverse = np.unique(batch["label"], return_inverse=True)
        out = []
        for i, text in enumerate(uniq.tolist()):
            if text == "":
                raise ValueError("unlabelled rows cannot be shared; label them from the policy first")
            out.append(
                self.sign(
                    encode_batch(batch[inverse == i]), label=parse_cached(text), kind=kind, recipient=recipient,
                    time_s=time_s,
                )
            )
        return out


# ---------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------
class RejectReason(StrEnum):
    """Why a message was rejected (also the keys of :attr:`Verifier.counts`)."""

    MALFORMED = "malformed"  # not parseable as an envelope / payload not a record batch
    UNSIGNED = "unsigned"  # no signature
    UNKNOWN_SIGNER = "unknown_signer"  # origin node not in the trust store
    ALTERED = "altered"  # a field or payload byte changed after sealing (digest mismatch)
    FORGED = "forged"  # self-consistent but the signature does not verify with the node's key
    EXPIRED = "expired"  # creation time outside [now - max_age_s, now + max_clock_skew_s]
    REPLAYED = "replayed"  # sequence not greater than the last accepted from that origin
    NOT_OWNER = "not_owner"  # signer's partner does not own the rows' sensors / partner field
    NOT_SHAREABLE = "not_shareable"  # raw plots of a sensor whose policy forbids sharing plots
    NOT_RELEASABLE = "not_releasable"  # the receiving partner may not see the envelope's label
    MISROUTED = "misrouted"  # addressed to another partner (redirected or misdelivered)
    MISLABELLED = "mislabelled"  # row label != envelope label, or below the policy default
    IMPLAUSIBLE = "implausible"  # values non-finite or physically impossible (siap.sharing.content)


class RejectedMessage(Exception):
    """A message the verifier refused: ``reason`` (a :class:`RejectReason`) and ``detail``."""

    def __init__(self, reason: RejectReason, detail: str, origin: str | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.origin = origin


class Verifier:
    """Checks envelopes from coalition nodes and hands back their record batch.

    A stream never stops for one bad message: :meth:`verify` raises :class:`RejectedMessage`,
    counts it under its reason in :attr:`counts` (``counts["accepted"]`` for the good ones),
    logs it, and appends a ``reject`` entry to ``audit`` if one is given; the verifier's state
    (last accepted sequence per origin) only moves on acceptance.

    ``recipient`` (required: a verifier always knows who it is): the partner this verifier
    receives for. A message addressed to another partner is refused (``misrouted``), and so is
    one whose label is not releasable to ``recipient`` (``not_releasable``) even if it was
    genuinely signed and addressed to it.

    ``state_path``: a JSON file where the last accepted sequence number of every origin is
    persisted (atomically, on each acceptance), so that a restarted receiver still refuses a
    replay of a message it accepted before the restart. ``max_message_bytes`` bounds what is
    parsed at all.
    """

    def __init__(
        self,
        trust_store: TrustStore,
        policy: Policy,
        max_age_s: float = 30.0,
        max_clock_skew_s: float = 2.0,
        audit: AuditLog | None = None,
        *,
        recipient: str,
        state_path: str | Path | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        policy.partner(recipient)  # KeyError for a partner the policy does not know
        for name, value in (("max_age_s", max_age_s), ("max_clock_skew_s", max_clock_skew_s)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0 (got {value})")
        self.recipient = recipient
        self.trust_store = trust_store
        self.policy = policy
        self.max_age_s = float(max_age_s)
        self.max_clock_skew_s = float(max_clock_skew_s)
        self.max_message_bytes = int(max_message_bytes)
        self.audit = audit
        self.counts: Counter[str] = Counter()
        self.last_seq: dict[str, int] = {}
        self.state_path = Path(state_path) if state_path is not None else None
        if self.state_path is not None:
            doc = _read_state(self.state_path, {"recipient": recipient})
            if doc is not None:
                seqs = doc.get("last_seq")
                if not isinstance(seqs, dict) or not all(isinstance(v, int) for v in seqs.values()):
                    raise ConfigError(f"{self.state_path}: last_seq: expected a mapping node id -> integer")
                self.last_seq = {str(k): int(v) for k, v in seqs.items()}

    def verify(self, envelope: SignedEnvelope | bytes, now_s: float) -> np.ndarray:
        """The envelope's record batch if every check passes; else RejectedMessage (counted).

        ``now_s`` is the receiver's clock (ValueError if it is not finite: that is the caller's
        bug, not the sender's)."""
        if not math.isfinite(now_s):
            raise ValueError(f"now_s must be a finite Unix time (got {now_s})")
        origin = envelope.origin_node if isinstance(envelope, SignedEnvelope) else None
        try:
            try:
                env, batch = self._check(envelope, now_s)
            except RejectedMessage:
                raise
            except Exception as e:  # noqa: BLE001 - a bug must not let one message stop the stream
                log.exception("unexpected error while checking a message from %s", origin)
                raise RejectedMessage(
                    RejectReason.MALFORMED, f"unexpected error while checking: {type(e).__name__}: {e}", origin
                ) from None
        except RejectedMessage as rej:
            rej.origin = rej.origin or origin
            self.counts[rej.reason.value] += 1
            log.warning("rejected message from %s: %s", rej.origin, rej)
            if self.audit is not None:
                self.audit.append("reject", time_s=now_s, reason=rej.reason.value, detail=rej.detail, origin=rej.origin)
            raise
        self.last_seq[env.origin_node] = env.seq
        if self.state_path is not None:
            _write_json_atomic(self.state_path, {"recipient": self.recipient, "last_seq": self.last_seq})
        self.counts["accepted"] += 1
        return batch

    def _check(self, envelope: SignedEnvelope | bytes, now_s: float) -> tuple[SignedEnvelope, np.ndarray]:
        R = RejectReason
        if not isinstance(envelope, SignedEnvelope):
            if len(envelope) > self.max_message_bytes:
                raise RejectedMessage(R.MALFORMED, f"message of {len(envelope)} bytes is larger than {self.max_message_bytes}")
            try:
                envelope = SignedEnvelope.from_bytes(envelope)
            except (ValueError, UnicodeDecodeError, struct.error) as e:
                raise RejectedMessage(R.MALFORMED, str(e)) from None
        env = envelope
        if not env.signature:
            raise RejectedMessage(R.UNSIGNED, "message carries no signature", env.origin_node)
        node = self.trust_store.get(env.origin_node)
        if node is None:
            raise RejectedMessage(R.UNKNOWN_SIGNER, f"node {env.origin_node!r} is not in the trust store", env.origin_node)
        try:
            msg = env.signed_message()
        except ValueError as e:
            raise RejectedMessage(R.MALFORMED, str(e), env.origin_node) from None
        if hashlib.sha256(msg).digest() != env.digest:
            raise RejectedMessage(R.ALTERED, "content does not match its sealed digest", env.origin_node)
        try:
            node.public_key.verify(env.signature, msg)
        except InvalidSignature:
            raise RejectedMessage(R.FORGED, f"signature does not verify with the key of {env.origin_node!r}", env.origin_node) from None
        if env.origin_partner != node.partner:
            raise RejectedMessage(
                R.NOT_OWNER, f"node {env.origin_node!r} belongs to {node.partner}, message claims {env.origin_partner}", env.origin_node
            )
        age = now_s - env.time_s
        if not (-self.max_clock_skew_s <= age <= self.max_age_s):
            raise RejectedMessage(
                R.EXPIRED,
                f"created {age:.3f} s before now; window is [-{self.max_clock_skew_s:g}, {self.max_age_s:g}] s",
                env.origin_node,
            )
        if env.recipient != self.recipient:
            raise RejectedMessage(
                R.MISROUTED, f"addressed to {env.recipient!r}, received by {self.recipient}", env.origin_node
            )
        try:
            entitled = self.policy.releasable(env.label, self.recipient)
        except ValueError as e:
            raise RejectedMessage(R.MALFORMED, f"label: {e}", env.origin_node) from None
        if not entitled:
            raise RejectedMessage(
                R.NOT_RELEASABLE, f"label {env.label} is not releasable to {self.recipient}", env.origin_node
            )
        last = self.last_seq.get(env.origin_node)
        if last is not None and env.seq <= last:
            raise RejectedMessage(R.REPLAYED, f"sequence {env.seq} <= last accepted {last}", env.origin_node)
        dtype = _KIND_DTYPES.get(env.kind)
        if dtype is None:
            raise RejectedMessage(R.MALFORMED, f"unsupported message kind {env.kind!r}; expected plots or tracks", env.origin_node)
        try:
            batch = decode_batch(env.payload, dtype)
        except ValueError as e:
            raise RejectedMessage(R.MALFORMED, str(e), env.origin_node) from None
        self._check_rows(env, batch)
        implausible = implausible_plots if env.kind == "plots" else implausible_tracks
        why = implausible(batch, now_s, self.max_age_s, self.max_clock_skew_s)
        if why is not None:
            raise RejectedMessage(R.IMPLAUSIBLE, why, env.origin_node)
        return env, batch

    def _check_rows(self, env: SignedEnvelope, batch: np.ndarray) -> None:
        R = RejectReason
        pol = self.policy
        try:
            env_label = parse_cached(env.label)
        except ValueError as e:
            raise RejectedMessage(R.MISLABELLED, f"envelope label: {e}", env.origin_node) from None
        if env_label.policy != pol.label_policy:
            raise RejectedMessage(R.MISLABELLED, f"envelope label {env.label!r} is not under policy {pol.label_policy}", env.origin_node)
        if len(batch) == 0:
            return
        for text in np.unique(batch["label"]).tolist():
            try:
                same = parse_cached(text) == env_label
            except ValueError:
                same = False
            if not same:
                raise RejectedMessage(R.MISLABELLED, f"row label {text!r} differs from envelope label {env.label!r}", env.origin_node)
        partners = set(np.unique(batch["partner"]).tolist())
        allowed = {env.origin_partner} if env.kind == "plots" else {env.origin_partner, ""}
        if not partners <= allowed:
            raise RejectedMessage(
                R.NOT_OWNER, f"rows name partner(s) {sorted(partners - allowed)} but the signer is {env.origin_partner}", env.origin_node
            )
        required: list[tuple[str, Label]] = []
        if env.kind == "plots":
            for sid in np.unique(batch["sensor_id"]).tolist():
                owner = pol.owner_or_none(sid)
                if owner != env.origin_partner:
                    who = "not in the policy" if owner is None else f"owned by {owner}"
                    raise RejectedMessage(R.NOT_OWNER, f"sensor {sid!r} is {who}, signer is {env.origin_partner}", env.origin_node)
                if not pol.share_plots(sid):
                    raise RejectedMessage(R.NOT_SHAREABLE, f"policy forbids sharing raw plots of {sid!r}", env.origin_node)
                required.append((f"sensor {sid}", pol.sensor_label(sid)))
        else:
            pairs = np.unique(np.stack([batch["partner"].astype("U64"), batch["sources"].astype("U64")], axis=1), axis=0)
            for partner, sources_text in pairs.tolist():
                sources = split_sources(sources_text)
                for token in sources:
                    try:
                        owner, _ = pol.source_label(token)
                    except KeyError as e:
                        raise RejectedMessage(R.NOT_OWNER, str(e.args[0]), env.origin_node) from None
                    if partner and owner != partner and (token not in pol.sensors or not pol.share_plots(token)):
                        raise RejectedMessage(
                            R.NOT_OWNER,
                            f"{partner} track lists source {token!r} of {owner}, which {partner} cannot have received raw",
                            env.origin_node,
                        )
                if not partner and not sources:
                    raise RejectedMessage(R.MISLABELLED, "coalition track without sources has no policy label", env.origin_node)
                required.append((f"{partner or 'coalition'} track from [{sources_text}]", pol.required_track_label(partner, sources)))
        for what, need in required:
            if not dominates(env_label, need):
                raise RejectedMessage(
                    R.MISLABELLED, f"label {env.label!r} is less restrictive than the policy's {need.format()!r} for {what}", env.origin_node
                )
