"""Test vectors: fixed keys and inputs, and the exact outputs our code gives for them.

``python -m node.codegen`` writes :func:`build_vectors` to ``docs/vectors/`` and our own
tests read those files back, so the published vectors cannot drift from the code.

Keys: node A's identity key is the Ed25519 key of RFC 8037, Appendix A.1 (its RFC 7638
thumbprint, ``kPrK_qmx...``, is A's node id). Every other key is derived from a label:
``SHAKE256("refnode test vector" 0x00 label)``, as many bytes as the key needs. All private
keys are in the files: they are test keys, never to be used for anything else.

HPKE sealing is randomised, so a sealed envelope cannot be reproduced byte for byte. The
sealed envelopes are built once by :func:`build_sealed_vectors` and kept as
*decrypt-only* vectors: they must open to the given message. Everything a receiver
refuses before it decrypts (signature, addressing, time, version) is pinned exactly in
``envelopes-reject.json``, over a fixed placeholder payload that is never decrypted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from protocol import jws
from protocol.discovery import PeerKeys, build_discovery, sign_discovery, verify_discovery
from protocol.encoding import b64u_decode, b64u_encode, dumps_canonical, loads_object
from protocol.envelope import (
    Routing,
    digest,
    open_envelope,
    seal_envelope,
    sign_message,
    sign_outer,
)
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.invitations import (
    InvitationState,
    make_invitation,
    referral_key,
    referral_url,
    secret_hash,
)
from protocol.keys import DecryptionKey, SigningKey, fingerprint_of, jwk_thumbprint
from protocol.messages import (
    Consent,
    ContactProfile,
    DealSummary,
    Person,
    ReferralOffer,
)
from protocol.models import format_ts, parse_ts
from protocol.receipts import make_receipt
from protocol.suites import SuiteId, hpke_info
from protocol.wire import (
    MAX_CLOCK_SKEW_S,
    MAX_ENVELOPE_AGE_S,
    TYP_DISCOVERY,
    TYP_ENVELOPE,
    TYP_RECEIPT,
    Disposition,
    ErrorCode,
    MessageType,
)

#: The ``now`` of every vector.
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)

#: RFC 8037, Appendix A.1: the Ed25519 private and public key, and (A.3) its thumbprint.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

SEALED_FILE = "envelopes-decrypt-only.json"

_TEST_ONLY = "Test keys, published: never use them for anything but tests."


def derive(label: str, size: int) -> bytes:
    """The bytes of a derived test key: SHAKE256("refnode test vector" 0x00 label)."""
    return hashlib.shake_256(b"refnode test vector\x00" + label.encode("utf-8")).digest(size)


@dataclass(frozen=True)
class VectorNode:
    """A node of the vectors, with every key it holds."""

    label: str
    name: str
    identity: SigningKey
    signing: SigningKey
    x25519: DecryptionKey
    hybrid: DecryptionKey

    @property
    def node_id(self) -> str:
        return self.identity.kid

    @property
    def inbox_url(self) -> str:
        return f"https://{self.label.lower()}.refnode.example/refnode/v1/inbox"

    def enc_key(self, suite: SuiteId) -> DecryptionKey:
        return self.x25519 if suite is SuiteId.X25519_CHACHA else self.hybrid

    def decryption_keys(self) -> dict[str, DecryptionKey]:
        return {self.x25519.kid: self.x25519, self.hybrid.kid: self.hybrid}

    def discovery(self) -> bytes:
        doc = build_discovery(
            name=self.name,
            inbox_url=self.inbox_url,
            identity=self.identity.public,
            signing=[(self.signing.public, "active")],
            encryption=[
                (SuiteId.MLKEM768X25519_CHACHA, self.hybrid, "active"),
                (SuiteId.X25519_CHACHA, self.x25519, "active"),
            ],
            now=NOW,
        )
        return sign_discovery(doc, self.identity)

    def peer_keys(self) -> PeerKeys:
        return verify_discovery(self.discovery(), expected_node_id=self.node_id)[1]


def vector_node(label: str, name: str) -> VectorNode:
    identity = (
        SigningKey.from_seed(b64u_decode(RFC8037_D))
        if label == "A"
        else SigningKey.from_seed(derive(f"{label}/identity", 32))
    )
    return VectorNode(
        label=label,
        name=name,
        identity=identity,
        signing=SigningKey.from_seed(derive(f"{label}/signing", 32)),
        x25519=DecryptionKey.x25519(derive(f"{label}/x25519", 32)),
        hybrid=DecryptionKey.mlkem768_x25519(derive(f"{label}/mlkem768x25519", 96)),
    )


def vector_nodes() -> dict[str, VectorNode]:
    """A (the referrer), B (the recipient) and C (a third node)."""
    return {
        "A": vector_node("A", "Harbour Mortgages Ltd"),
        "B": vector_node("B", "Zoë & Partners Conveyancing"),
        "C": vector_node("C", "Northfield Estate Agents"),
    }


def referral_offer() -> ReferralOffer:
    """The message every envelope vector carries."""
    agent = Person(name="Ann Example", email="ann@a.example")
    return ReferralOffer(
        referral_id="ref-0001",
        connection_id="conn-ab",
        referral_type="conveyancing",
        deal=DealSummary(
            title="Purchase of 14 Mill Lane",
            deal_type="mortgage",
            amount="425000.00",
            currency="GBP",
            summary="First-time buyers; completion hoped for in March.",
        ),
        contacts=[
            ContactProfile(
                ref="contact-17",
                first_name="Chloé",
                last_name="Buyer",
                email="chloe@client.example",
                phone="+44 7700 900123",
            )
        ],
        shared_fields=["contacts.first_name", "contacts.last_name", "contacts.email", "contacts.phone"],
        referring_agent=agent,
        message="Chloé is expecting your call.",
        consent=Consent(
            contact_refs=["contact-17"],
            consented_at=format_ts(NOW - timedelta(hours=2)),
            method="verbal",
            disclosure_version="2026-01",
            disclosure_sha256=b64u_encode(hashlib.sha256(b"privacy disclosure 2026-01").digest()),
            recorded_by=agent,
        ),
        sent_at=format_ts(NOW),
    )


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
    thumbprints = [{"source": "RFC 8037 Appendix A.3", "jwk": rfc_jwk, "thumbprint": jwk_thumbprint(rfc_jwk)}]
    for label, node in nodes.items():
        for what, jwk in (
            ("signing", node.signing.public.jwk()),
            ("x25519", node.x25519.public.jwk()),
            ("mlkem768x25519", node.hybrid.public.jwk()),
        ):
            thumbprints.append({"source": f"{label} {what}", "jwk": jwk, "thumbprint": jwk_thumbprint(jwk)})
    return {
        "description": (
            "Test keys of nodes A, B and C. node_id = RFC 7638 thumbprint of the identity key; "
            "fingerprint = base32 of the first 15 bytes of SHA-256(node_id), in groups of four. "
            "Derived keys: SHAKE256('refnode test vector' || 0x00 || derived_from). "
            "The private 'd' of an MLKEM768-X25519 key is the 64-byte ML-KEM-768 seed followed "
            "by the 32-byte X25519 scalar. " + _TEST_ONLY
        ),
        "derivation": {
            "example_label": "B/identity",
            "example_bytes": b64u_encode(derive("B/identity", 32)),
        },
        "nodes": out,
        "thumbprints": thumbprints,
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
                "signed": jws.sign_flattened({"typ": TYP_DISCOVERY}, payload, a.signing).decode("ascii"),
                "expected_node_id": a.node_id,
                "error": ErrorCode.BAD_SIGNATURE.value,
            },
            {
                "name": "one character of the signature changed",
                "signed": _flip_member(a_raw, "signature", 5).decode("ascii"),
                "expected_node_id": a.node_id,
                "error": ErrorCode.BAD_SIGNATURE.value,
            },
        ],
    }


# --- envelopes -------------------------------------------------------------------------

#: Stands in for the sealed payload in vectors that are refused before decryption.
PLACEHOLDER_PAYLOAD = derive("placeholder sealed payload", 80)

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _flip_member(raw: bytes, member: str, index: int) -> bytes:
    """Change one base64url character (not the last, so it stays canonical) of a member."""
    obj = loads_object(raw)
    text: str = obj[member]
    if not 0 <= index < len(text) - 1:
        raise ValueError("index must leave the last character alone")
    new = _ALPHABET[(_ALPHABET.index(text[index]) + 1) % 64]
    obj[member] = text[:index] + new + text[index + 1 :]
    return dumps_canonical(obj)


def _sign_raw_header(header: dict[str, Any], payload: bytes, key: SigningKey) -> bytes:
    """A flattened JWS over exactly ``header`` (alg included): for headers we refuse."""
    protected = b64u_encode(dumps_canonical(header))
    body = b64u_encode(payload)
    signature = key.sign(f"{protected}.{body}".encode("ascii"))
    return dumps_canonical({"payload": body, "protected": protected, "signature": b64u_encode(signature)})


def _outer_header(routing: Routing, suite: SuiteId, enc_kid: str, key: SigningKey) -> dict[str, Any]:
    return {
        "alg": jws.ALG,
        "kid": key.kid,
        "typ": TYP_ENVELOPE,
        "rn_v": 1,
        "rn_suite": suite.value,
        "rn_enc_kid": enc_kid,
        **routing.header(),
    }


def _routing(envelope_id: str, nodes: dict[str, VectorNode], now: datetime = NOW) -> Routing:
    return Routing(MessageType.REFERRAL_OFFER, envelope_id, nodes["A"].node_id, nodes["B"].node_id, now)


def _placeholder_envelope(
    nodes: dict[str, VectorNode], envelope_id: str, *, now: datetime = NOW, key: SigningKey | None = None
) -> bytes:
    b_key = nodes["B"].x25519
    return sign_outer(
        PLACEHOLDER_PAYLOAD,
        _routing(envelope_id, nodes, now),
        suite=SuiteId.X25519_CHACHA,
        enc_kid=b_key.kid,
        signing_key=key or nodes["A"].signing,
    )


def _envelope_signing_file(nodes: dict[str, VectorNode]) -> dict[str, Any]:
    a, b = nodes["A"], nodes["B"]
    routing = _routing("env-0001", nodes)
    inner = sign_message(referral_offer(), routing, a.signing)
    inner_protected, inner_payload, inner_sig = inner.decode("ascii").split(".")
    outer = _placeholder_envelope(nodes, "env-0001")
    outer_obj = loads_object(outer)
    return {
        "description": (
            "Sign, encrypt, sign. The inner compact JWS is deterministic (Ed25519) and is what "
            "the decrypt-only envelopes open to. The outer JWS is shown over a placeholder "
            "payload, since the real payload (HPKE) is randomised."
        ),
        "now": format_ts(NOW),
        "sender": "A",
        "recipient": "B",
        "message_type": MessageType.REFERRAL_OFFER.value,
        "message": referral_offer().wire(),
        "inner": {
            "protected_header": loads_object(b64u_decode(inner_protected)),
            "payload_json": b64u_decode(inner_payload).decode("utf-8"),
            "signing_input": f"{inner_protected}.{inner_payload}",
            "signature": inner_sig,
            "compact": inner.decode("ascii"),
            "signed_with": "A signing",
        },
        "hpke_info_hex": hpke_info(a.node_id, b.node_id, "env-0001").hex(),
        "outer": {
            "protected_header": loads_object(b64u_decode(outer_obj["protected"])),
            "payload_hex": PLACEHOLDER_PAYLOAD.hex(),
            "signing_input": f"{outer_obj['protected']}.{outer_obj['payload']}",
            "signature": outer_obj["signature"],
            "envelope": outer.decode("ascii"),
            "envelope_sha256": digest(outer),
            "signed_with": "A signing",
        },
    }


def _reject(
    name: str,
    envelope: bytes,
    error: ErrorCode,
    *,
    receiver: str = "B",
    known_peers: tuple[str, ...] = ("A",),
    now: datetime = NOW,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "envelope": envelope.decode("ascii"),
        "receiver": receiver,
        "known_peers": list(known_peers),
        "now": format_ts(now),
        "error": error.value,
    }
    if detail is not None:
        out["detail"] = detail
    return out


def _envelopes_reject_file(nodes: dict[str, VectorNode]) -> dict[str, Any]:
    a, b = nodes["A"], nodes["B"]
    good = _placeholder_envelope(nodes, "env-0002")
    retargeted = loads_object(good)
    header = loads_object(b64u_decode(retargeted["protected"]))
    header["rn_to"] = nodes["C"].node_id
    retargeted["protected"] = b64u_encode(dumps_canonical(header))
    base = _outer_header(_routing("env-0003", nodes), SuiteId.X25519_CHACHA, b.x25519.kid, a.signing)
    replay_first = _placeholder_envelope(nodes, "env-0009")
    replay_second = _placeholder_envelope(nodes, "env-0009", now=NOW + timedelta(seconds=1))
    return {
        "description": (
            "Envelopes a receiver must refuse, with the error code. Open each as 'receiver' "
            "at 'now', knowing the discovery documents of 'known_peers' (discovery.json). "
            "Each is refused before decryption (the check order of the spec), so the "
            "payload is a placeholder that is never decrypted."
        ),
        "placeholder_payload_hex": PLACEHOLDER_PAYLOAD.hex(),
        "must_reject": [
            _reject("one character of the outer signature changed", _flip_member(good, "signature", 10), ErrorCode.BAD_SIGNATURE),
            _reject("one character of the payload changed", _flip_member(good, "payload", 10), ErrorCode.BAD_SIGNATURE),
            _reject("recipient changed in the header after signing", dumps_canonical(retargeted), ErrorCode.BAD_SIGNATURE),
            _reject("addressed to B, received by C", good, ErrorCode.WRONG_RECIPIENT, receiver="C"),
            _reject(
                "older than the maximum age",
                good,
                ErrorCode.EXPIRED,
                now=NOW + timedelta(seconds=MAX_ENVELOPE_AGE_S + 1),
            ),
            _reject(
                "created too far in the future",
                good,
                ErrorCode.NOT_YET_VALID,
                now=NOW - timedelta(seconds=MAX_CLOCK_SKEW_S + 1),
            ),
            _reject("sender unknown, and not a connection-request", good, ErrorCode.UNKNOWN_SENDER, known_peers=()),
            _reject(
                "signed with the identity key, which signs only discovery documents",
                _placeholder_envelope(nodes, "env-0004", key=a.identity),
                ErrorCode.UNKNOWN_KEY,
            ),
            _reject(
                "unsupported protocol major (rn_v 2)",
                _sign_raw_header(dict(base, rn_v=2), PLACEHOLDER_PAYLOAD, a.signing),
                ErrorCode.UNSUPPORTED_VERSION,
                detail={"supported": [1]},
            ),
            _reject(
                "unsupported message major (referral-offer/2.0)",
                _sign_raw_header(dict(base, rn_type="referral-offer/2.0"), PLACEHOLDER_PAYLOAD, a.signing),
                ErrorCode.UNSUPPORTED_VERSION,
                detail={"supported": [1]},
            ),
            _reject(
                "unknown message type",
                _sign_raw_header(dict(base, rn_type="referral-bogus/1.0"), PLACEHOLDER_PAYLOAD, a.signing),
                ErrorCode.UNSUPPORTED_TYPE,
            ),
            _reject(
                "alg is the deprecated EdDSA name",
                _sign_raw_header(dict(base, alg="EdDSA"), PLACEHOLDER_PAYLOAD, a.signing),
                ErrorCode.MALFORMED,
            ),
            _reject(
                "unknown header parameter in the same minor",
                _sign_raw_header(dict(base, rn_extra="x"), PLACEHOLDER_PAYLOAD, a.signing),
                ErrorCode.MALFORMED,
            ),
        ],
        "replay": {
            "description": (
                "De-duplication on (sender, envelope id): the receiver stored the SHA-256 of "
                "'first'. The same bytes again are a duplicate (answer with the stored "
                "receipt); other bytes under the same id are refused as replayed."
            ),
            "first": replay_first.decode("ascii"),
            "first_sha256": digest(replay_first),
            "cases": [
                {"received": replay_first.decode("ascii"), "result": "duplicate"},
                {"received": replay_second.decode("ascii"), "result": ErrorCode.REPLAYED.value},
            ],
        },
    }


# --- receipts --------------------------------------------------------------------------


def _receipts_file(nodes: dict[str, VectorNode]) -> dict[str, Any]:
    a, b = nodes["A"], nodes["B"]
    envelope = _placeholder_envelope(nodes, "env-0001")
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
    rejected = make_receipt(
        disposition=Disposition.REJECTED,
        error=RemoteProtocolError(ErrorCode.EXPIRED, "created 2026-11-15T12:00:00Z, older than 604800s"),
        **common,
    )
    by_c = make_receipt(disposition=Disposition.ACCEPTED, **dict(common, signing_key=nodes["C"].signing))

    def entry(raw: bytes) -> dict[str, Any]:
        return {"receipt": raw.decode("ascii"), "payload": loads_object(jws.parse_flattened(raw, typ=TYP_RECEIPT).payload)}

    return {
        "description": (
            "Receipts B signs for the envelope of envelope-signing.json (exact bytes). Verify "
            "with B's signing keys; envelope_sha256 is the SHA-256 of the envelope's exact bytes."
        ),
        "now": format_ts(NOW),
        "signer": "B",
        "envelope_sha256_of": "envelope-signing.json outer.envelope",
        "receipts": {"accepted": entry(accepted), "duplicate": entry(duplicate), "rejected": entry(rejected)},
        "must_reject": [
            {
                "name": "one character of the signature changed",
                "receipt": _flip_member(accepted, "signature", 7).decode("ascii"),
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


# --- invitations -----------------------------------------------------------------------


def _invitations_file(nodes: dict[str, VectorNode]) -> dict[str, Any]:
    a = nodes["A"]
    secret = derive("invitation secret", 32)
    inv = make_invitation(
        base_url="https://a.refnode.example", node_id=a.node_id, invitation_id="inv-0001", secret=secret
    )
    wrong = b64u_encode(derive("wrong secret", 32))
    expires = NOW + timedelta(days=7)
    stored = secret_hash(inv.secret)

    def redemption(presented: str, state: InvitationState, now: datetime, error: ErrorCode | None) -> dict[str, Any]:
        return {
            "presented_secret": presented,
            "state": state.value,
            "now": format_ts(now),
            "error": None if error is None else error.value,
        }

    url = referral_url(inv)
    return {
        "description": (
            "An invitation of node A. The referral URL pins A's node id; the referral key is "
            "'rnk1_' + base64url(secret); A stores only secret_hash = base64url(SHA-256("
            "'refnode invitation' || 0x00 || secret))."
        ),
        "input": {
            "base_url": "https://a.refnode.example/",
            "node_id": a.node_id,
            "invitation_id": "inv-0001",
            "secret_hex": secret.hex(),
        },
        "invitation": inv.wire(),
        "referral_url": url,
        "referral_key": referral_key(inv),
        "secret_hash": stored,
        "fingerprint": fingerprint_of(a.node_id),
        "redemption": {
            "stored_hash": stored,
            "expires_at": format_ts(expires),
            "cases": [
                redemption(inv.secret, InvitationState.OPEN, NOW, None),
                redemption(wrong, InvitationState.OPEN, NOW, ErrorCode.INVITATION_INVALID),
                redemption(inv.secret, InvitationState.USED, NOW, ErrorCode.INVITATION_USED),
                redemption(inv.secret, InvitationState.REVOKED, NOW, ErrorCode.INVITATION_REVOKED),
                redemption(inv.secret, InvitationState.OPEN, expires, ErrorCode.INVITATION_EXPIRED),
            ],
        },
        "parse_must_reject": [
            {"url": url, "key": "rnk2_" + inv.secret, "error": ErrorCode.INVITATION_INVALID.value},
            {"url": url, "key": referral_key(inv)[:-2], "error": ErrorCode.INVITATION_INVALID.value},
            {
                "url": "https://a.refnode.example/somewhere/else?node=" + a.node_id,
                "key": referral_key(inv),
                "error": ErrorCode.INVITATION_INVALID.value,
            },
            {
                "url": url.replace(a.node_id, a.node_id[:-1]),
                "key": referral_key(inv),
                "error": ErrorCode.INVITATION_INVALID.value,
            },
        ],
    }


# --- strict encodings ------------------------------------------------------------------


def _encoding_file() -> dict[str, Any]:
    def text(source: str, error: ErrorCode | None = None, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"hex": source.encode("utf-8").hex(), "text": source, **extra}
        if error is not None:
            out["error"] = error.value
        return out

    malformed = ErrorCode.MALFORMED
    return {
        "description": (
            "Strict encodings. base64url: no padding, URL alphabet only, canonical (unused "
            "low bits zero). JSON: UTF-8, no duplicate member names, no floats, no NaN or "
            "Infinity, no lone surrogates. Inputs are given as hex of the exact bytes."
        ),
        "base64url": {
            "accept": [
                text("", decoded_hex=""),
                text("AA", decoded_hex="00"),
                text("_-8", decoded_hex="ffef"),
                text("_-_v", decoded_hex="ffefef"),
                text("Zm9vYg", decoded_hex="666f6f62"),
            ],
            "reject": [
                text("AA==", malformed),
                text("+/8", malformed),
                text("AB", malformed),
                text("A", malformed),
                text("Zm9v Yg", malformed),
                text("Zm9vYg\n", malformed),
                text("é", malformed),
            ],
        },
        "json": {
            "accept": [
                text('{"amount":"425000.00","n":1}', value={"amount": "425000.00", "n": 1}),
                text('{"a":"\\ud83d\\ude00"}', value={"a": "\U0001f600"}),
                text(' {"a" : [true,false,null]} ', value={"a": [True, False, None]}),
            ],
            "reject": [
                text('{"a":1,"a":2}', malformed),
                text('{"amount":425000.5}', malformed),
                text('{"n":1e3}', malformed),
                text('{"n":NaN}', malformed),
                text('{"n":Infinity}', malformed),
                text('{"a":"\\ud800"}', malformed),
                text('{"a":1', malformed),
                {"hex": "7b2261223a22ff227d", "text": None, "error": malformed.value},
            ],
        },
    }


def build_vectors() -> dict[str, dict[str, Any]]:
    """File name -> contents of every deterministic vector file."""
    nodes = vector_nodes()
    return {
        "keys.json": _keys_file(nodes),
        "discovery.json": _discovery_file(nodes),
        "envelope-signing.json": _envelope_signing_file(nodes),
        "envelopes-reject.json": _envelopes_reject_file(nodes),
        "receipts.json": _receipts_file(nodes),
        "invitations.json": _invitations_file(nodes),
        "encoding.json": _encoding_file(),
    }


# --- decrypt-only sealed envelopes -----------------------------------------------------


def _sealed_skeleton(nodes: dict[str, VectorNode]) -> dict[str, Any]:
    """The decrypt-only file without its randomised envelopes."""
    a = nodes["A"]
    inner = sign_message(referral_offer(), _routing("env-0001", nodes), a.signing).decode("ascii")
    window = [
        {"now": format_ts(NOW), "result": "ok"},
        {"now": format_ts(NOW + timedelta(seconds=MAX_ENVELOPE_AGE_S)), "result": "ok"},
        {"now": format_ts(NOW + timedelta(seconds=MAX_ENVELOPE_AGE_S + 1)), "result": ErrorCode.EXPIRED.value},
        {"now": format_ts(NOW - timedelta(seconds=MAX_CLOCK_SKEW_S)), "result": "ok"},
        {"now": format_ts(NOW - timedelta(seconds=MAX_CLOCK_SKEW_S + 1)), "result": ErrorCode.NOT_YET_VALID.value},
    ]
    vectors = [
        {
            "suite": suite.value,
            "enc_kid": nodes["B"].enc_key(suite).kid,
            "envelope_id": "env-0001",
            "message_type": MessageType.REFERRAL_OFFER.value,
            "message": referral_offer().wire(),
            "inner_jws": inner,
            "opens_at": window,
        }
        for suite in SuiteId
    ]
    return {
        "description": (
            "DECRYPT-ONLY vectors: whole envelopes from A to B, one per cipher suite. HPKE "
            "sealing is randomised, so these bytes cannot be regenerated; they were sealed "
            "once. Open each as B (knowing A's discovery document) at each 'opens_at' time: "
            "it must give 'result' ('ok': the message and the inner JWS shown here)."
        ),
        "sender": "A",
        "recipient": "B",
        "vectors": vectors,
    }


def build_sealed_vectors() -> dict[str, Any]:
    """A fresh decrypt-only file. Randomised: HPKE sealing."""
    nodes = vector_nodes()
    a, b = nodes["A"], nodes["B"]
    doc = _sealed_skeleton(nodes)
    for vector in doc["vectors"]:
        suite = SuiteId(vector["suite"])
        raw = seal_envelope(
            referral_offer(),
            message_type=MessageType.REFERRAL_OFFER,
            envelope_id=vector["envelope_id"],
            sender=a.node_id,
            recipient=b.node_id,
            now=NOW,
            signing_key=a.signing,
            suite=suite,
            recipient_key=b.enc_key(suite).public,
        )
        vector["envelope"] = raw.decode("ascii")
        vector["envelope_sha256"] = digest(raw)
    return doc


def _outcome(action: Callable[[], object]) -> str:
    try:
        action()
    except ProtocolError as exc:
        return exc.code.value
    return "ok"


def check_sealed_vectors(doc: dict[str, Any]) -> list[str]:
    """What is wrong with a stored decrypt-only file; empty when it is current.

    Current means: everything but the envelopes equals what we would write today, and
    every envelope opens, at every listed time, as the file says.
    """
    nodes = vector_nodes()
    a, b = nodes["A"], nodes["B"]
    stored = [{k: v for k, v in vector.items() if k not in ("envelope", "envelope_sha256")} for vector in doc.get("vectors", [])]
    problems: list[str] = []
    if dict(doc, vectors=stored) != _sealed_skeleton(nodes):
        problems.append("the message, keys or expectations changed since the envelopes were sealed")
    a_keys = a.peer_keys()
    for vector in doc.get("vectors", []):
        raw = str(vector.get("envelope", "")).encode("ascii")
        if digest(raw) != vector.get("envelope_sha256"):
            problems.append(f"{vector.get('suite')}: envelope_sha256 does not match")
        for case in vector.get("opens_at", []):
            moment = parse_ts(case["now"])

            def open_it(
                moment: datetime = moment, raw: bytes = raw, vector: dict[str, Any] = vector
            ) -> None:
                opened = open_envelope(
                    raw,
                    me=b.node_id,
                    now=moment,
                    peer_keys={a.node_id: a_keys}.get,
                    decryption_keys=b.decryption_keys(),
                )
                if opened.message.wire() != vector["message"] or opened.inner_jws.decode("ascii") != vector["inner_jws"]:
                    raise RemoteProtocolError(ErrorCode.MALFORMED, "opened to another message")

            got = _outcome(open_it)
            if got != case["result"]:
                problems.append(f"{vector.get('suite')} at {case['now']}: {got}, expected {case['result']}")
    return problems
