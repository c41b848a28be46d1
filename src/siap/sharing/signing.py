"""Signed provenance of every shared message: Ed25519 envelopes addressed to and sealed for
their recipient, the trust store of pinned keys (with revocation), and the verifier.

A node signs what it shares with its Ed25519 key (RFC 8032, via ``cryptography``); receivers
verify against a :class:`TrustStore` of coalition node keys and a :class:`~siap.sharing.policy.Policy`.

Signed message (the exact bytes Ed25519 signs; all integers big-endian)::

    b"siap.sharing.envelope.v2\\x00"        25 bytes, domain separation
    u8  len(origin_node)  || origin_node   ASCII, 1..64 bytes
    origin_partner                         3 bytes ASCII (ISO 3166-1 alpha-3)
    recipient                              3 bytes ASCII: the partner it is addressed to
    u64 seq                                per origin node and recipient, strictly increasing
    f64 time_s                             IEEE 754 binary64, creation time, Unix s UTC
    u8  len(label)        || label         ASCII canonical label text, 1..64 bytes
    u8  len(kind)         || kind          ASCII, e.g. "tracks", "plots"
    u8  cipher                             0 payload in the clear, 1 sealed (see seal_payload)
    u32 len(payload)
    SHA-256(payload)                       32 bytes (of the ciphertext when sealed)

Wire form of an envelope (:meth:`SignedEnvelope.to_bytes`)::

    b"SIAPENV2"                            8 bytes magic
    u8 len(origin_node) || origin_node || origin_partner(3) || recipient(3) || u64 seq || f64 time_s
    || u8 len(label) || label || u8 len(kind) || kind || u8 cipher
    u32 len(payload)      || payload       Arrow IPC stream of one record batch (or its sealed form)
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
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import yaml
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

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
    "fingerprint",
    "seal_payload",
    "open_payload",
    "CIPHER_NONE",
    "CIPHER_X25519_CHACHA20",
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
    """A node's own keys: its id, its partner nation, its Ed25519 signing key and its X25519 key
    for the envelopes sealed to it (None: the node cannot receive sealed envelopes)."""

    node_id: str
    partner: str
    private_key: Ed25519PrivateKey
    encryption_key: X25519PrivateKey | None = None

    def __post_init__(self) -> None:
        _check_node_id(self.node_id)
        _check_partner(self.partner)

    @classmethod
    def generate(cls, node_id: str, partner: str) -> NodeIdentity:
        """Fresh key pairs, made where they are used: only the public halves ever leave the node."""
        return cls(node_id, partner, Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    def private_pem(self) -> bytes:
        """PKCS#8 PEM of the signing key, followed by the encryption key's (unencrypted: protect
        the file)."""
        keys = [self.private_key, *([self.encryption_key] if self.encryption_key is not None else [])]
        return b"".join(
            k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            for k in keys
        )

    def save_private_key(self, path: str | Path) -> None:
        """Write the private keys (PEM) with mode 0600, created so (never world-readable)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(self.private_pem())
        p.chmod(0o600)

    @classmethod
    def load(cls, path: str | Path, node_id: str, partner: str) -> NodeIdentity:
        """Read the PEM written by :meth:`save_private_key`; ConfigError if it is not one."""
        try:
            text = Path(path).read_bytes()
        except OSError as e:
            raise ConfigError(f"{path}: private_key: expected a readable PEM key file (got {e.strerror})") from None
        blocks = [b + b"-----END PRIVATE KEY-----\n" for b in text.split(b"-----END PRIVATE KEY-----")[:-1]]
        keys = []
        for block in blocks:
            try:
                keys.append(serialization.load_pem_private_key(block.strip() + b"\n", password=None))
            except (ValueError, TypeError) as e:
                raise ConfigError(f"{path}: private_key: expected unencrypted PEM keys (got {e})") from None
        signing = [k for k in keys if isinstance(k, Ed25519PrivateKey)]
        sealing = [k for k in keys if isinstance(k, X25519PrivateKey)]
        if len(signing) != 1 or len(sealing) > 1 or len(keys) != len(signing) + len(sealing):
            raise ConfigError(f"{path}: private_key: expected one Ed25519 key and at most one X25519 key")
        return cls(node_id, partner, signing[0], sealing[0] if sealing else None)

    def trusted(self) -> TrustedNode:
        """The public halves, for a trust store."""
        enc = self.encryption_key.public_key() if self.encryption_key is not None else None
        return TrustedNode(self.node_id, self.partner, self.public_key, enc)


def _public_pem(key: Ed25519PublicKey | X25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _raw(key: Ed25519PublicKey | X25519PublicKey | None) -> bytes:
    if key is None:
        return b""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _load_public_pem(data: bytes, where: str, kind: type = Ed25519PublicKey) -> Any:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: expected a PEM {kind.__name__.removesuffix('PublicKey')} public key (got {e})") from None
    if not isinstance(key, kind):
        raise ConfigError(f"{where}: expected an {kind.__name__.removesuffix('PublicKey')} key (got {type(key).__name__})")
    return key


def fingerprint(node_id: str, partner: str, public_key: Ed25519PublicKey, encryption_key: X25519PublicKey | None) -> str:
    """What two people compare (read aloud, side by side) before pinning a node's keys: the
    first 160 bits of SHA-256 over a domain, the node id, the partner and both raw public keys,
    as ten groups of four hex digits."""
    digest = hashlib.sha256(
        b"siap.sharing.fingerprint.v1\x00" + node_id.encode("ascii") + b"\x00" + partner.encode("ascii")
        + _raw(public_key) + _raw(encryption_key)
    ).hexdigest()[:40]
    return " ".join(digest[i : i + 4] for i in range(0, 40, 4))


@dataclass(frozen=True)
class TrustedNode:
    """A coalition node the receiver trusts: id, partner, Ed25519 public key (its signatures)
    and X25519 public key (to seal envelopes to it; None if it receives none)."""

    node_id: str
    partner: str
    public_key: Ed25519PublicKey
    encryption_key: X25519PublicKey | None = None

    def __post_init__(self) -> None:
        _check_node_id(self.node_id)
        _check_partner(self.partner)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.node_id, self.partner, self.public_key, self.encryption_key)


class TrustStore:
    """Pinned public keys: node id -> (partner, signing key, encryption key), and the keys that
    were revoked. Saved as YAML or as a directory ``PARTNER/NODE.pem`` (+ ``NODE.x25519.pem``).

    YAML form (``fingerprint`` is written for people to compare; it is checked on load)::

        nodes:
          JPN-node:
            partner: JPN
            public_key: |
              -----BEGIN PUBLIC KEY-----
              ...
            encryption_key: |
              -----BEGIN PUBLIC KEY-----
              ...
            fingerprint: 1a2b 3c4d ...
        revoked:
          JPN-node: [<PEM of a compromised signing key>, ...]

    A revoked key can never be added again; messages it signs are refused as ``revoked``.
    """

    def __init__(self, nodes: Iterable[TrustedNode | NodeIdentity] = ()) -> None:
        self._nodes: dict[str, TrustedNode] = {}
        self._revoked: dict[str, list[Ed25519PublicKey]] = {}
        for n in nodes:
            self.add(n)

    def add(self, node: TrustedNode | NodeIdentity) -> None:
        """Pin a node (a private identity is reduced to its public half). ValueError on a clash
        with another pinned key (revoke the old one first) or for a revoked key."""
        t = node.trusted() if isinstance(node, NodeIdentity) else node
        if any(_raw(k) == _raw(t.public_key) for k in self._revoked.get(t.node_id, [])):
            raise ValueError(f"the key of {t.node_id!r} was revoked and cannot be trusted again")
        old = self._nodes.get(t.node_id)
        if old is not None and old.fingerprint != t.fingerprint:
            raise ValueError(f"node {t.node_id!r} is already trusted with a different key or partner")
        self._nodes[t.node_id] = t

    def revoke(self, node_id: str) -> TrustedNode:
        """Withdraw trust in ``node_id``'s current keys (e.g. after a compromise). Its messages
        are refused as ``revoked`` from now on; pin its new keys with :meth:`add`."""
        t = self._nodes.pop(node_id, None)
        if t is None:
            raise KeyError(f"node {node_id!r} is not trusted")
        self._revoked.setdefault(node_id, []).append(t.public_key)
        return t

    def revoked_keys(self, node_id: str) -> list[Ed25519PublicKey]:
        return list(self._revoked.get(node_id, []))

    def get(self, node_id: str) -> TrustedNode | None:
        return self._nodes.get(node_id)

    def receiving_node(self, partner: str) -> TrustedNode:
        """The node that receives for ``partner`` (the one pinned with an encryption key).
        KeyError if there is none or more than one."""
        nodes = [t for t in self._nodes.values() if t.partner == partner and t.encryption_key is not None]
        if len(nodes) != 1:
            raise KeyError(f"expected one node of {partner} with an encryption key in the trust store, found {len(nodes)}")
        return nodes[0]

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
            nodes = {}
            for t in self:
                entry = {"partner": t.partner, "public_key": _public_pem(t.public_key), "fingerprint": t.fingerprint}
                if t.encryption_key is not None:
                    entry["encryption_key"] = _public_pem(t.encryption_key)
                nodes[t.node_id] = entry
            doc: dict[str, Any] = {"nodes": nodes}
            if self._revoked:
                doc["revoked"] = {n: [_public_pem(k) for k in keys] for n, keys in sorted(self._revoked.items())}
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(yaml.safe_dump(doc, sort_keys=True), encoding="utf-8")
            return
        if self._revoked:
            raise ValueError("a trust store with revoked keys must be saved as YAML")
        for t in self:
            (p / t.partner).mkdir(parents=True, exist_ok=True)
            (p / t.partner / f"{t.node_id}.pem").write_text(_public_pem(t.public_key), encoding="ascii")
            if t.encryption_key is not None:
                (p / t.partner / f"{t.node_id}.x25519.pem").write_text(_public_pem(t.encryption_key), encoding="ascii")

    @classmethod
    def load(cls, path: str | Path) -> TrustStore:
        """Inverse of :meth:`save`; ConfigError (one line) on a bad file or key."""
        p = Path(path)
        store = cls()
        if p.is_dir():
            for pem in sorted(p.glob("*/*.pem")):
                if pem.name.endswith(".x25519.pem"):
                    continue
                where = str(pem)
                enc_path = pem.with_name(pem.stem + ".x25519.pem")
                enc = _load_public_pem(enc_path.read_bytes(), str(enc_path), X25519PublicKey) if enc_path.exists() else None
                try:
                    store.add(TrustedNode(pem.stem, pem.parent.name, _load_public_pem(pem.read_bytes(), where), enc))
                except ValueError as e:
                    raise ConfigError(f"{where}: node: expected PARTNER/NODE_ID.pem ({e})") from None
            if not len(store):
                raise ConfigError(f"{p}: (trust store): expected PARTNER/NODE_ID.pem public keys in this folder, found none")
            return store
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"{p}: (file): expected a readable trust store (got {e.strerror})") from None
        except RecursionError:
            raise ConfigError(f"{p}: (top level): expected a YAML trust store of sensible depth (nested too deep)") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: (file): expected a UTF-8 YAML trust store") from None
        except (yaml.YAMLError, ValueError) as e:
            raise ConfigError(f"{p}: (yaml): expected valid YAML (got {' '.join(str(e).split())[:200]})") from None
        nodes = doc.get("nodes") if isinstance(doc, dict) else None
        if not isinstance(nodes, dict) or not {"nodes"} <= set(doc) <= {"nodes", "revoked"}:
            raise ConfigError(f"{p}: nodes: expected a mapping 'nodes: {{NODE_ID: {{partner, public_key, ...}}}}' [and 'revoked']")
        revoked = doc.get("revoked") or {}
        if not isinstance(revoked, dict) or not all(isinstance(v, list) for v in revoked.values()):
            raise ConfigError(f"{p}: revoked: expected a mapping NODE_ID: [PEM public keys]")
        for node_id, pems in revoked.items():
            store._revoked[str(node_id)] = [_load_public_pem(str(k).encode(), f"{p}: revoked.{node_id}") for k in pems]
        allowed = {"partner", "public_key", "encryption_key", "fingerprint"}
        for node_id, entry in nodes.items():
            where = f"{p}: nodes.{node_id}"
            if not isinstance(entry, dict) or not {"partner", "public_key"} <= set(entry) <= allowed:
                raise ConfigError(f"{where}: expected the keys partner, public_key[, encryption_key, fingerprint] (got {entry!r:.60})")
            key = _load_public_pem(str(entry["public_key"]).encode(), f"{where}.public_key")
            enc = (
                _load_public_pem(str(entry["encryption_key"]).encode(), f"{where}.encryption_key", X25519PublicKey)
                if "encryption_key" in entry else None
            )
            try:
                t = TrustedNode(str(node_id), str(entry["partner"]), key, enc)
            except ValueError as e:
                raise ConfigError(f"{where}: expected a valid node id and partner ({e})") from None
            if "fingerprint" in entry and str(entry["fingerprint"]) != t.fingerprint:
                raise ConfigError(f"{where}.fingerprint: expected {t.fingerprint} for these keys (got {entry['fingerprint']})")
            try:
                store.add(t)
            except ValueError as e:
                raise ConfigError(f"{where}: {e}") from None
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


def _fields_bytes(
    node: str, partner: str, recipient: str, seq: int, time_s: float, label: str, kind: str, cipher: int
) -> bytes:
    nb = _ascii(node, "origin node", 64)
    pb = _ascii(partner, "origin partner", 3)
    rb = _ascii(recipient, "recipient", 3)
    if len(pb) != 3 or len(rb) != 3:
        raise ValueError(f"origin partner {partner!r} and recipient {recipient!r} must be 3 letters")
    lb = _ascii(label, "label", LABEL_MAX_CHARS)
    kb = _ascii(kind, "kind", 32)
    if not 0 <= seq < 2**64:
        raise ValueError(f"sequence number {seq} must be in [0, 2**64)")
    if not 0 <= cipher < 256:
        raise ValueError(f"cipher {cipher} must be one byte")
    return (
        struct.pack(">B", len(nb)) + nb + pb + rb + struct.pack(">Qd", seq, time_s)
        + struct.pack(">B", len(lb)) + lb + struct.pack(">B", len(kb)) + kb + struct.pack(">B", cipher)
    )


CIPHER_NONE = 0  # payload in the clear (tests, one-process runs)
CIPHER_X25519_CHACHA20 = 1  # payload sealed to the recipient: see seal_payload
_SEAL_INFO = b"siap.sharing.seal.v1\x00"


def _seal_key(shared: bytes, ephemeral: bytes, recipient: bytes, fields: bytes) -> bytes:
    return HKDF(SHA256(), 32, salt=ephemeral + recipient, info=_SEAL_INFO + fields).derive(shared)


def seal_payload(plaintext: bytes, recipient_key: X25519PublicKey, fields: bytes) -> bytes:
    """Encrypt ``plaintext`` to ``recipient_key`` (ECIES: an ephemeral X25519 key agreement,
    RFC 7748; HKDF-SHA256, RFC 5869, salted with both public keys and bound to the envelope's
    ``fields``; ChaCha20-Poly1305, RFC 8439, with the fields as associated data). The key is new
    for every message, so the nonce is fixed. Returns ``ephemeral public key (32) || ciphertext``."""
    eph = X25519PrivateKey.generate()
    e_raw, r_raw = _raw(eph.public_key()), _raw(recipient_key)
    key = _seal_key(eph.exchange(recipient_key), e_raw, r_raw, fields)
    return e_raw + ChaCha20Poly1305(key).encrypt(bytes(12), plaintext, fields)


def open_payload(sealed: bytes, private_key: X25519PrivateKey, fields: bytes) -> bytes:
    """Inverse of :func:`seal_payload`; ValueError if it was not sealed to this key for these
    fields (or was altered)."""
    if len(sealed) < 32 + 16:
        raise ValueError("sealed payload too short")
    try:
        eph = X25519PublicKey.from_public_bytes(sealed[:32])
        key = _seal_key(private_key.exchange(eph), sealed[:32], _raw(private_key.public_key()), fields)
        return ChaCha20Poly1305(key).decrypt(bytes(12), sealed[32:], fields)
    except (InvalidTag, ValueError) as e:
        raise ValueError(f"cannot open the sealed payload with this node's key ({type(e).__name__})") from None


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
    cipher: int = CIPHER_NONE  # how the payload is encrypted (signed)

    def fields(self) -> bytes:
        """The header fields as signed (and, sealed, bound to the ciphertext)."""
        return _fields_bytes(
            self.origin_node, self.origin_partner, self.recipient, self.seq, self.time_s, self.label, self.kind,
            self.cipher,
        )

    def signed_message(self) -> bytes:
        """The exact bytes the signature covers (see module doc)."""
        return (
            ENVELOPE_DOMAIN
            + self.fields()
            + struct.pack(">I", len(self.payload))
            + hashlib.sha256(self.payload).digest()
        )

    @classmethod
    def seal(
        cls, identity: NodeIdentity, *, recipient: str, seq: int, time_s: float, label: str | Label, kind: str,
        payload: bytes, encrypt_to: X25519PublicKey | None = None,
    ) -> SignedEnvelope:
        """Sign ``payload`` and its metadata as ``identity``, addressed to partner ``recipient``
        (label is written canonically); with ``encrypt_to`` (the recipient node's X25519 key) the
        payload is first encrypted to it (:func:`seal_payload`) and the ciphertext is signed."""
        _check_partner(recipient)
        text = label.format() if isinstance(label, Label) else parse_cached(label).format()
        if not _KIND_RE.match(kind):
            raise ValueError(f"bad message kind {kind!r}; expected e.g. 'tracks' or 'plots'")
        if not math.isfinite(time_s):
            raise ValueError(f"time_s must be finite (got {time_s})")
        env = cls(identity.node_id, identity.partner, recipient, int(seq), float(time_s), text, kind, bytes(payload))
        if encrypt_to is not None:
            env = dataclasses.replace(env, cipher=CIPHER_X25519_CHACHA20)
            env = dataclasses.replace(env, payload=seal_payload(env.payload, encrypt_to, env.fields()))
        msg = env.signed_message()
        return dataclasses.replace(env, digest=hashlib.sha256(msg).digest(), signature=identity.sign(msg))

    def to_bytes(self) -> bytes:
        """Wire form (see module doc)."""
        if len(self.digest) not in (0, 32) or len(self.signature) > 255:
            raise ValueError("digest must be 32 bytes and signature at most 255 bytes")
        digest = self.digest if self.digest else bytes(32)
        return (
            WIRE_MAGIC
            + self.fields()
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
        cipher = r.u8()
        (n,) = struct.unpack(">I", r.take(4))
        payload = r.take(n)
        digest = r.take(32)
        signature = r.take(r.u8())
        if r.pos != len(r.data):
            raise ValueError(f"{len(r.data) - r.pos} trailing bytes after the envelope")
        return cls(node, partner, recipient, seq, time_s, label, kind, payload, digest, signature, cipher)


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
    """Seals messages for one node, numbering them strictly increasingly per recipient.

    Each recipient has its own sequence: a single counter would let a partner see, from the
    gaps in its own numbers, how much was sent to the others (a covert channel the wire-level
    non-interference test caught). Sequence numbers must keep increasing across restarts, or
    partners reject the restarted node's messages as replays. With ``state_path`` the signer
    persists a high-water mark per recipient: it reserves :data:`SEQ_RESERVE_BLOCK` numbers at a
    time (written, fsynced, before any of them is used) and a restarted signer continues above
    everything it may have used. Without one, ``first_seq`` defaults to microseconds since the
    Unix epoch at construction (increasing across restarts as long as the clock does not step
    back); pass an explicit ``first_seq`` for reproducible runs (a persisted mark above it wins).

    ``encrypt_with``: the trust store whose pinned encryption keys the payloads are sealed to
    (each envelope to the node that receives for its recipient, :meth:`TrustStore.receiving_node`);
    None: payloads in the clear.
    """

    def __init__(
        self,
        identity: NodeIdentity,
        first_seq: int | None = None,
        state_path: str | Path | None = None,
        encrypt_with: TrustStore | None = None,
    ) -> None:
        self.identity = identity
        self.encrypt_with = encrypt_with
        self.first_seq = int(time.time() * 1e6) if first_seq is None else int(first_seq)
        self.state_path = Path(state_path) if state_path is not None else None
        self._next: dict[str, int] = {}
        self._reserved: dict[str, int] = {}
        if self.state_path is not None:
            doc = _read_state(self.state_path, {"node": identity.node_id})
            if doc is not None:
                marks = doc.get("reserved_seq")
                if not isinstance(marks, dict) or not all(isinstance(v, int) and v >= 0 for v in marks.values()):
                    raise ConfigError(f"{self.state_path}: reserved_seq: expected a mapping partner -> non-negative integer")
                self._next = {str(k): max(v, self.first_seq) for k, v in marks.items()}

    def peek_seq(self, recipient: str) -> int:
        """The sequence number the next envelope to ``recipient`` will carry."""
        return self._next.get(recipient, self.first_seq)

    def _take_seq(self, recipient: str) -> int:
        seq = self.peek_seq(recipient)
        if self.state_path is not None and seq >= self._reserved.get(recipient, 0):
            self._reserved[recipient] = seq + SEQ_RESERVE_BLOCK
            marks = {**self._next, **self._reserved}
            _write_json_atomic(self.state_path, {"node": self.identity.node_id, "reserved_seq": dict(sorted(marks.items()))})
        self._next[recipient] = seq + 1
        return seq

    def sign(
        self, payload: bytes, *, label: str | Label, kind: str, recipient: str, time_s: float | None = None
    ) -> SignedEnvelope:
        """Seal raw payload bytes for partner ``recipient`` under its next sequence number."""
        _check_partner(recipient)
        encrypt_to = None
        if self.encrypt_with is not None:
            try:
                encrypt_to = self.encrypt_with.receiving_node(recipient).encryption_key
            except KeyError as e:
                raise ValueError(f"cannot seal to {recipient}: {e.args[0]}") from None
        return SignedEnvelope.seal(
            self.identity, recipient=recipient, seq=self._take_seq(recipient),
            time_s=time.time() if time_s is None else time_s, label=label, kind=kind, payload=payload,
            encrypt_to=encrypt_to,
        )

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
    REVOKED = "revoked"  # signed with a key that was revoked (compromised)
    UNSEALED = "unsealed"  # payload in the clear where this receiver requires it sealed
    UNDECRYPTABLE = "undecryptable"  # sealed payload that this node's key cannot open
    MISLABELLED = "mislabelled"  # row label != envelope label, or below the policy default
    IMPLAUSIBLE = "implausible"  # values non-finite or physically impossible (siap.sharing.content)


def _verifies(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


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
    (last accepted sequence per origin) only moves on acceptance. Within an accepted message,
    rows with impossible values (:mod:`siap.sharing.content`) are dropped next to their sane
    neighbours, counted in :attr:`dropped_rows` and audited (``drop``); a message whose rows are
    all impossible is rejected (``implausible``).

    ``recipient`` (required: a verifier always knows who it is): the partner this verifier
    receives for. A message addressed to another partner is refused (``misrouted``), and so is
    one whose label is not releasable to ``recipient`` (``not_releasable``) even if it was
    genuinely signed and addressed to it.

    ``state_path``: a JSON file where the last accepted sequence number of every origin is
    persisted (atomically, on each acceptance), so that a restarted receiver still refuses a
    replay of a message it accepted before the restart. ``max_message_bytes`` bounds what is
    parsed at all.

    ``decryption_key``: this node's X25519 key. When given, every payload must be sealed to it
    (``unsealed`` otherwise: no downgrade to the clear) and is opened before it is decoded.
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
        decryption_key: X25519PrivateKey | None = None,
    ) -> None:
        self.decryption_key = decryption_key
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
        #: rows dropped from accepted messages, by reason (implausible rows next to sane ones)
        self.dropped_rows: Counter[str] = Counter()
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
        try:
            msg = env.signed_message()
        except ValueError as e:
            raise RejectedMessage(R.MALFORMED, str(e), env.origin_node) from None
        if node is None or not _verifies(node.public_key, env.signature, msg):
            for old in self.trust_store.revoked_keys(env.origin_node):
                if _verifies(old, env.signature, msg):
                    raise RejectedMessage(R.REVOKED, f"signed with a revoked key of {env.origin_node!r}", env.origin_node)
        if node is None:
            raise RejectedMessage(R.UNKNOWN_SIGNER, f"node {env.origin_node!r} is not in the trust store", env.origin_node)
        if hashlib.sha256(msg).digest() != env.digest:
            raise RejectedMessage(R.ALTERED, "content does not match its sealed digest", env.origin_node)
        if not _verifies(node.public_key, env.signature, msg):
            raise RejectedMessage(R.FORGED, f"signature does not verify with the key of {env.origin_node!r}", env.origin_node)
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
        payload = env.payload
        if env.cipher == CIPHER_X25519_CHACHA20:
            if self.decryption_key is None:
                raise RejectedMessage(R.UNDECRYPTABLE, "payload is sealed and this receiver holds no decryption key", env.origin_node)
            try:
                payload = open_payload(env.payload, self.decryption_key, env.fields())
            except ValueError as e:
                raise RejectedMessage(R.UNDECRYPTABLE, str(e), env.origin_node) from None
        elif env.cipher != CIPHER_NONE:
            raise RejectedMessage(R.MALFORMED, f"unknown cipher {env.cipher}", env.origin_node)
        elif self.decryption_key is not None:
            raise RejectedMessage(R.UNSEALED, "payload in the clear; this receiver requires it sealed to its key", env.origin_node)
        try:
            batch = decode_batch(payload, dtype)
        except ValueError as e:
            raise RejectedMessage(R.MALFORMED, str(e), env.origin_node) from None
        self._check_rows(env, batch)
        implausible = implausible_plots if env.kind == "plots" else implausible_tracks
        bad, why = implausible(batch, now_s, self.max_age_s, self.max_clock_skew_s)
        if bad.any():
            if bad.all():
                raise RejectedMessage(R.IMPLAUSIBLE, why or "", env.origin_node)
            # a stream drops the bad record, not its neighbours: keep the sane rows
            id_field = "plot_id" if env.kind == "plots" else "track_id"
            self._drop_rows(env, int(bad.sum()), why or "", batch[id_field][bad][:20].tolist(), now_s)
            batch = batch[~bad]
        return env, batch

    def _drop_rows(self, env: SignedEnvelope, n: int, why: str, ids: list[int], now_s: float) -> None:
        """Count, log and audit implausible rows dropped from an otherwise accepted message."""
        self.dropped_rows[RejectReason.IMPLAUSIBLE.value] += n
        log.warning("dropped %d implausible row(s) from %s#%d: %s", n, env.origin_node, env.seq, why)
        if self.audit is not None:
            self.audit.append(
                "drop", time_s=now_s, reason=RejectReason.IMPLAUSIBLE.value, detail=why, origin=env.origin_node,
                seq=env.seq, n_rows=n, ids=ids,
            )

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
