"""Test vectors: fixed keys and inputs, and the exact outputs our code gives for them.

``python -m node.codegen`` writes :func:`build_vectors` to ``docs/vectors/`` and our own
tests read those files back, so the published vectors cannot drift from the code. The
inputs are in :mod:`node.codegen.vector_inputs`, the envelope vectors (and the decrypt-only
sealed envelopes) in :mod:`node.codegen.envelope_vectors` and its replay sequence in
:mod:`node.codegen.replay_vectors`, the offers and encodings in
:mod:`node.codegen.text_vectors`, the invitations and their directions in
:mod:`node.codegen.invitation_vectors`, and the X-Wing section of the keys in
:mod:`node.codegen.xwing_vector`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from node.codegen import xwing_vector
from node.codegen.enterprise_vectors import enterprise_partner_file
from node.codegen.envelope_vectors import envelope_signing_file, envelopes_reject_file
from node.codegen.invitation_vectors import invitations_file
from node.codegen.text_vectors import encoding_file, offers_file
from node.codegen.vector_inputs import (
    NOW,
    RFC8037_X,
    VectorNode,
    derive,
    flip_member,
    placeholder_envelope,
    vector_nodes,
)
from protocol import jws
from protocol.encoding import b64u_encode, dumps_canonical, loads_object
from protocol.envelope import digest
from protocol.errors import RemoteProtocolError
from protocol.keys import DecryptionKey, SigningKey, fingerprint_of, jwk_thumbprint
from protocol.models import format_ts
from protocol.receipts import make_receipt
from protocol.suites import SuiteId
from protocol.wire import (
    MAX_ENVELOPE_AGE_S,
    TYP_DISCOVERY,
    TYP_RECEIPT,
    Disposition,
    ErrorCode,
)

_TEST_ONLY = "Test keys, published: never use them for anything but tests."


# --- keys, thumbprints, fingerprints ---------------------------------------------------


def _sig_key_entry(key: SigningKey, label: str) -> dict[str, Any]:
    return {
        "derived_from": label,
        "kid": key.kid,
        "private_jwk": dict(key.public.jwk(), d=b64u_encode(key.seed())),
        "public_jwk": key.public.jwk(),
    }


def _enc_key_entry(key: DecryptionKey, label: str, suite: SuiteId) -> dict[str, Any]:
    return {
        "derived_from": label,
        "kid": key.kid,
        "suite": suite.value,
        "private_jwk": dict(key.public.jwk(), d=b64u_encode(key.secret)),
        "public_jwk": key.public.jwk(),
    }


def _keys_file(nodes: dict[str, VectorNode]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, node in nodes.items():
        out[label] = {
            "name": node.name,
            "node_id": node.node_id,
            "fingerprint": fingerprint_of(node.node_id),
            "inbox_url": node.inbox_url,
            "identity": _sig_key_entry(
                node.identity, "RFC 8037 Appendix A.1" if label == "A" else f"{label}/identity"
            ),
            "signing": _sig_key_entry(node.signing, f"{label}/signing"),
            "x25519": _enc_key_entry(node.x25519, f"{label}/x25519", SuiteId.X25519_CHACHA),
            "mlkem768x25519": _enc_key_entry(
                node.hybrid, f"{label}/mlkem768x25519", SuiteId.MLKEM768X25519_CHACHA
            ),
        }
    rfc_jwk = {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}
    thumbprints = [
        {"source": "RFC 8037 Appendix A.3", "jwk": rfc_jwk, "thumbprint": jwk_thumbprint(rfc_jwk)}
    ]
    for label, node in nodes.items():
        for what, jwk in (
            ("signing", node.signing.public.jwk()),
            ("x25519", node.x25519.public.jwk()),
            ("mlkem768x25519", node.hybrid.public.jwk()),
        ):
            thumbprints.append(
                {"source": f"{label} {what}", "jwk": jwk, "thumbprint": jwk_thumbprint(jwk)}
            )
    return {
        "description": (
            "Test keys of nodes A, B and C. node_id = RFC 7638 thumbprint of the identity key; "
            "fingerprint = base32 of the first 15 bytes of SHA-256(node_id), in groups of four. "
            "Derived keys: SHAKE256('refnode test vector' || 0x00 || derived_from). "
            "The private 'd' of an MLKEM768-X25519 key is its 32-byte X-Wing decapsulation "
            "key (seed), expanded as 'xwing' shows. " + _TEST_ONLY
        ),
        "derivation": {
            "example_label": "B/identity",
            "example_bytes": b64u_encode(derive("B/identity", 32)),
        },
        "nodes": out,
        "thumbprints": thumbprints,
        "xwing": xwing_vector.section(nodes["B"].hybrid),
    }


# --- discovery -------------------------------------------------------------------------


def _discovery_file(nodes: dict[str, VectorNode]) -> dict[str, Any]:
    documents = []
    for label, node in nodes.items():
        raw = node.discovery()
        keys = node.peer_keys()
        documents.append(
            {
                "node": label,
                "signed": raw.decode("ascii"),
                "document": loads_object(jws.parse_flattened(raw, typ=TYP_DISCOVERY).payload),
                "expected": {
                    "node_id": node.node_id,
                    "fingerprint": fingerprint_of(node.node_id),
                    "name": node.name,
                    "inbox_url": node.inbox_url,
                    "signing_kids": sorted(keys.signing),
                    "encryption": [[suite.value, key.kid] for suite, key in keys.encryption],
                },
            }
        )
    a = nodes["A"]
    a_raw = a.discovery()
    payload = jws.parse_flattened(a_raw, typ=TYP_DISCOVERY).payload
    return {
        "description": (
            "Signed discovery documents (GET /.well-known/refnode). Verify with the identity "
            "key listed in the document, whose thumbprint must be the expected node id."
        ),
        "now": format_ts(NOW),
        "documents": documents,
        "must_reject": [
            {
                "name": "pinned node id differs (the referral URL named node B)",
                "signed": a_raw.decode("ascii"),
                "expected_node_id": nodes["B"].node_id,
                "error": ErrorCode.FINGERPRINT_MISMATCH.value,
            },
            {
                "name": "signed by the operational key instead of the identity key",
                "signed": jws.sign_flattened({"typ": TYP_DISCOVERY}, payload, a.signing).decode(
                    "ascii"
                ),
                "expected_node_id": a.node_id,
                "error": ErrorCode.BAD_SIGNATURE.value,
            },
            {
                "name": "one character of the signature changed",
                "signed": flip_member(a_raw, "signature", 5).decode("ascii"),
                "expected_node_id": a.node_id,
                "error": ErrorCode.BAD_SIGNATURE.value,
            },
            *(
                {
                    "name": f"suites {why} (it must list the active keys' suites in key order)",
                    "signed": _with_suites(a, suites).decode("ascii"),
                    "expected_node_id": a.node_id,
                    "error": ErrorCode.MALFORMED.value,
                }
                for why, suites in (
                    ("in the other order", [SuiteId.X25519_CHACHA, SuiteId.MLKEM768X25519_CHACHA]),
                    ("leaves out the hybrid suite", [SuiteId.X25519_CHACHA]),
                    (
                        "repeats a suite",
                        [
                            SuiteId.MLKEM768X25519_CHACHA,
                            SuiteId.X25519_CHACHA,
                            SuiteId.X25519_CHACHA,
                        ],
                    ),
                )
            ),
        ],
    }


def _with_suites(node: VectorNode, suites: list[SuiteId]) -> bytes:
    """The node's discovery document with another ``suites`` list, signed as it is."""
    payload = loads_object(jws.parse_flattened(node.discovery(), typ=TYP_DISCOVERY).payload)
    payload["suites"] = [s.value for s in suites]
    return jws.sign_flattened({"typ": TYP_DISCOVERY}, dumps_canonical(payload), node.identity)


# --- receipts --------------------------------------------------------------------------


def _receipts_file(nodes: dict[str, VectorNode]) -> dict[str, Any]:
    a, b = nodes["A"], nodes["B"]
    envelope = placeholder_envelope(nodes, "env-0001")
    sha = digest(envelope)
    common: dict[str, Any] = {
        "envelope_id": "env-0001",
        "envelope_sha256": sha,
        "recipient": b.node_id,
        "sender": a.node_id,
        "now": NOW,
        "signing_key": b.signing,
    }
    accepted = make_receipt(disposition=Disposition.ACCEPTED, **common)
    duplicate = make_receipt(disposition=Disposition.DUPLICATE, **common)
    # The rejected receipt names an envelope that is expired at the receipt's time: made
    # an hour more than MAX_ENVELOPE_AGE_S before NOW (it is given whole below).
    made = NOW - timedelta(seconds=MAX_ENVELOPE_AGE_S + 3600)
    stale = placeholder_envelope(nodes, "env-0005", now=made)
    rejected = make_receipt(
        disposition=Disposition.REJECTED,
        error=RemoteProtocolError(
            ErrorCode.EXPIRED, f"created {format_ts(made)}, older than {MAX_ENVELOPE_AGE_S}s"
        ),
        **dict(common, envelope_id="env-0005", envelope_sha256=digest(stale)),
    )
    by_c = make_receipt(
        disposition=Disposition.ACCEPTED, **dict(common, signing_key=nodes["C"].signing)
    )

    def entry(raw: bytes) -> dict[str, Any]:
        return {
            "receipt": raw.decode("ascii"),
            "payload": loads_object(jws.parse_flattened(raw, typ=TYP_RECEIPT).payload),
        }

    return {
        "description": (
            "Receipts B signs at 'now'. 'accepted' and 'duplicate' are for the envelope of "
            "envelope-signing.json (exact bytes): they pin the receipt's form and signature "
            "over those bytes, not a verdict on them (that envelope's payload is a "
            "placeholder, which no receiver accepts: see its outer.if_delivered); "
            "'rejected' is for the envelope given with "
            "it, whose rn_iat is more than MAX_ENVELOPE_AGE_S before 'now', so B refuses it "
            "as expired (spec 8.5 step 7c). Verify with B's signing keys; envelope_sha256 is "
            "the SHA-256 of the envelope's exact bytes."
        ),
        "now": format_ts(NOW),
        "signer": "B",
        "envelope_sha256_of": "envelope-signing.json outer.envelope",
        "receipts": {
            "accepted": entry(accepted),
            "duplicate": entry(duplicate),
            "rejected": entry(rejected) | {"envelope": stale.decode("ascii")},
        },
        "must_reject": [
            {
                "name": "one character of the signature changed",
                "receipt": flip_member(accepted, "signature", 7).decode("ascii"),
                "error": ErrorCode.BAD_SIGNATURE.value,
            },
            {
                "name": "signed by a key B never had (C's)",
                "receipt": by_c.decode("ascii"),
                "error": ErrorCode.UNKNOWN_KEY.value,
            },
            {
                "name": "names other bytes than those sent",
                "receipt": accepted.decode("ascii"),
                "expected_envelope_sha256": digest(b"other bytes"),
                "error": ErrorCode.MALFORMED.value,
            },
        ],
    }


def build_vectors() -> dict[str, dict[str, Any]]:
    """File name -> contents of every deterministic vector file."""
    nodes = vector_nodes()
    return {
        "keys.json": _keys_file(nodes),
        "discovery.json": _discovery_file(nodes),
        "envelope-signing.json": envelope_signing_file(nodes),
        "envelopes-reject.json": envelopes_reject_file(nodes),
        "receipts.json": _receipts_file(nodes),
        "invitations.json": invitations_file(nodes),
        "encoding.json": encoding_file(),
        "offers.json": offers_file(),
        "enterprise-partner.json": enterprise_partner_file(),
    }
