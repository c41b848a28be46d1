"""Coalition sharing: confidentiality labels, releasability policy, signed envelopes, audit log.

Typical use::

    from siap.sharing import load_policy, release, Signer, Verifier, AuditLog

    policy = load_policy("pacific")
    mine = release(tracks, "AUS", policy, audit=audit_log)       # rows AUS may see, logged
    for env in Signer(identity).sign_batch(mine, recipient="AUS"):  # one envelope per label
        bus.publish(env.to_bytes())
    batch = Verifier(trust_store, policy, recipient="AUS").verify(data, now_s)  # or RejectedMessage

See docs/security.md for the label model, the policy file, the envelope byte layout, the threat
model and the audit chain.
"""

from siap.sharing.audit import AuditHead, AuditLog, AuditVerification, read_head, verify_audit_log
from siap.sharing.labels import (
    NATIONS,
    Classification,
    Label,
    combine,
    dominates,
    format_label,
    parse,
    releasable_to,
)
from siap.sharing.policy import Policy, builtin_policies, load_policy
from siap.sharing.release import release, release_mask
from siap.sharing.signing import (
    NodeIdentity,
    RejectedMessage,
    RejectReason,
    SignedEnvelope,
    Signer,
    TrustedNode,
    TrustStore,
    Verifier,
    decode_batch,
    encode_batch,
)

__all__ = [
    "AuditHead",
    "AuditLog",
    "AuditVerification",
    "Classification",
    "Label",
    "NATIONS",
    "NodeIdentity",
    "Policy",
    "RejectReason",
    "RejectedMessage",
    "SignedEnvelope",
    "Signer",
    "TrustStore",
    "TrustedNode",
    "Verifier",
    "builtin_policies",
    "combine",
    "decode_batch",
    "dominates",
    "encode_batch",
    "format_label",
    "load_policy",
    "parse",
    "read_head",
    "releasable_to",
    "release",
    "release_mask",
    "verify_audit_log",
]
