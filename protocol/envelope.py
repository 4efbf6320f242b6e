"""The envelope: every message between nodes travels in one.

Sign, then encrypt, then sign (section "Envelope" of docs/protocol.md):

1. The message JSON is signed by the sender as a compact JWS (``typ`` refnode-message+jws)
   whose protected header names the envelope id, type, sender, recipient and time. This
   inner signature is the sender's non-repudiable statement of what it said, to whom.
2. That compact JWS is sealed with HPKE to one of the recipient's encryption keys, with
   the sender, recipient and envelope id bound into the HPKE ``info``.
3. The sealed bytes are the payload of the outer JWS (flattened JSON serialization,
   ``typ`` refnode-envelope+jws), whose protected header repeats the routing fields in
   clear, and which the sender signs too. A receiver checks the outer signature before it
   spends anything on decryption, and a receipt names the SHA-256 of these exact bytes.

Functions here take keys, ids and ``now`` from the caller; HPKE sealing is the only
randomised step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field, StrictInt

from protocol import jws
from protocol.discovery import PeerKeys, verify_discovery
from protocol.encoding import b64u_encode, dumps_canonical, loads_object
from protocol.errors import RemoteProtocolError
from protocol.keys import DecryptionKey, EncryptionPublicKey, SigningKey
from protocol.messages import INTRODUCTION_TYPES, MESSAGE_MODELS, ConnectionRequest, Discovery
from protocol.models import (
    Digest,
    Ident,
    NodeId,
    Timestamp,
    WireModel,
    format_ts,
    parse_ts,
    validate,
)
from protocol.suites import SuiteId, hpke_info, open_sealed, parse_suite, seal
from protocol.versions import is_newer_minor, parse_versioned
from protocol.wire import (
    MAJOR,
    MAX_CLOCK_SKEW_S,
    MAX_ENVELOPE_AGE_S,
    MAX_ENVELOPE_BYTES,
    SUPPORTED_MAJORS,
    TYP_ENVELOPE,
    TYP_INNER,
    ErrorCode,
    MessageType,
    versioned,
)


class EnvelopeHeader(WireModel):
    """The outer JWS protected header."""

    typ: Literal["refnode-envelope+jws"]
    alg: Literal["Ed25519"]
    kid: Digest
    rn_v: StrictInt
    rn_id: Ident
    rn_type: str = Field(pattern=r"^[a-z][a-z-]{0,63}/[0-9]{1,4}\.[0-9]{1,4}$")
    rn_from: NodeId
    rn_to: NodeId
    rn_iat: Timestamp
    rn_reply_to: Ident | None = None
    rn_suite: str
    rn_enc_kid: Digest


class InnerHeader(WireModel):
    """The inner (compact) JWS protected header: the routing fields, signed with the message."""

    typ: Literal["refnode-message+jws"]
    alg: Literal["Ed25519"]
    kid: Digest
    rn_id: Ident
    rn_type: str
    rn_from: NodeId
    rn_to: NodeId
    rn_iat: Timestamp
    rn_reply_to: Ident | None = None


_ROUTING = ("rn_id", "rn_type", "rn_from", "rn_to", "rn_iat", "rn_reply_to")


def digest(raw: bytes) -> str:
    """Base64url SHA-256 of exact bytes, as receipts name them."""
    return b64u_encode(hashlib.sha256(raw).digest())


@dataclass(frozen=True)
class Routing:
    """The routing fields that the inner and the outer protected header both carry."""

    message_type: MessageType
    envelope_id: str
    sender: str
    recipient: str
    now: datetime
    reply_to: str | None = None

    def header(self) -> dict[str, Any]:
        routing: dict[str, Any] = {
            "rn_id": self.envelope_id,
            "rn_type": versioned(self.message_type),
            "rn_from": self.sender,
            "rn_to": self.recipient,
            "rn_iat": format_ts(self.now),
        }
        if self.reply_to is not None:
            routing["rn_reply_to"] = self.reply_to
        return routing


def sign_message(message: WireModel, routing: Routing, signing_key: SigningKey) -> bytes:
    """Step 1: the inner compact JWS. Ed25519 is deterministic, so these bytes are too."""
    if not isinstance(message, MESSAGE_MODELS[routing.message_type]):
        raise TypeError(f"{type(message).__name__} is not a {routing.message_type} message")
    header = {"typ": TYP_INNER, **routing.header()}
    return jws.sign_compact(header, dumps_canonical(message.wire()), signing_key)


def sign_outer(
    sealed: bytes, routing: Routing, *, suite: SuiteId, enc_kid: str, signing_key: SigningKey
) -> bytes:
    """Step 3: the outer flattened JWS over the sealed payload."""
    outer = {
        "typ": TYP_ENVELOPE,
        "rn_v": MAJOR,
        "rn_suite": suite.value,
        "rn_enc_kid": enc_kid,
        **routing.header(),
    }
    return jws.sign_flattened(outer, sealed, signing_key)


def seal_envelope(
    message: WireModel,
    *,
    message_type: MessageType,
    envelope_id: str,
    sender: str,
    recipient: str,
    now: datetime,
    signing_key: SigningKey,
    suite: SuiteId,
    recipient_key: EncryptionPublicKey,
    reply_to: str | None = None,
) -> bytes:
    """Build the bytes of an envelope carrying ``message`` from ``sender`` to ``recipient``."""
    routing = Routing(message_type, envelope_id, sender, recipient, now, reply_to)
    inner = sign_message(message, routing, signing_key)
    sealed = seal(suite, recipient_key, inner, hpke_info(sender, recipient, envelope_id))
    return sign_outer(sealed, routing, suite=suite, enc_kid=recipient_key.kid, signing_key=signing_key)


@dataclass(frozen=True)
class ParsedEnvelope:
    """An envelope whose syntax is checked, and nothing else yet."""

    raw: bytes
    sha256: str
    outer: jws.Jws
    header: EnvelopeHeader
    message_type: MessageType
    minor: int

    @property
    def envelope_id(self) -> str:
        return self.header.rn_id

    @property
    def sender(self) -> str:
        return self.header.rn_from


def parse_envelope(raw: bytes, *, max_bytes: int = MAX_ENVELOPE_BYTES) -> ParsedEnvelope:
    """Check size and syntax: JWS structure, header members, version, type."""
    if len(raw) > max_bytes:
        raise RemoteProtocolError(ErrorCode.TOO_LARGE, f"envelope is {len(raw)} bytes; the limit is {max_bytes}")
    outer = jws.parse_flattened(raw, typ=TYP_ENVELOPE)
    version = outer.header.get("rn_v")
    if not isinstance(version, int) or isinstance(version, bool):
        raise RemoteProtocolError(ErrorCode.MALFORMED, "rn_v must be an integer")
    if version not in SUPPORTED_MAJORS:
        raise RemoteProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol major version {version} is not supported",
            supported=list(SUPPORTED_MAJORS),
        )
    header = validate(EnvelopeHeader, outer.header, what="envelope header")
    name, minor = parse_versioned(header.rn_type)
    try:
        message_type = MessageType(name)
    except ValueError:
        raise RemoteProtocolError(
            ErrorCode.UNSUPPORTED_TYPE,
            f"message type {name!r} is not known",
            supported=[t.value for t in MessageType],
        ) from None
    return ParsedEnvelope(raw, digest(raw), outer, header, message_type, minor)


def verify_outer(parsed: ParsedEnvelope, keys: PeerKeys) -> None:
    """The outer signature must be by an active signing key of the named sender."""
    if keys.node_id != parsed.header.rn_from:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_SENDER, "keys are not the sender's")
    parsed.outer.verify(keys.signing_key(parsed.header.kid))


def check_addressing(parsed: ParsedEnvelope, *, me: str, now: datetime) -> None:
    """After the signature: addressed to us, and created within the acceptance window."""
    if parsed.header.rn_to != me:
        raise RemoteProtocolError(ErrorCode.WRONG_RECIPIENT, "envelope is addressed to another node")
    check_time_window(parse_ts(parsed.header.rn_iat), now)


def check_time_window(created: datetime, now: datetime) -> None:
    if created > now + timedelta(seconds=MAX_CLOCK_SKEW_S):
        raise RemoteProtocolError(
            ErrorCode.NOT_YET_VALID, f"created {format_ts(created)}, ahead of our clock by more than {MAX_CLOCK_SKEW_S}s"
        )
    if created < now - timedelta(seconds=MAX_ENVELOPE_AGE_S):
        raise RemoteProtocolError(
            ErrorCode.EXPIRED, f"created {format_ts(created)}, older than {MAX_ENVELOPE_AGE_S}s"
        )


def decrypt_inner(parsed: ParsedEnvelope, decryption_keys: Mapping[str, DecryptionKey]) -> jws.Jws:
    """Open the sealed payload and parse (not verify) the inner JWS."""
    suite = parse_suite(parsed.header.rn_suite)
    key = decryption_keys.get(parsed.header.rn_enc_kid)
    if key is None:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_KEY, "sealed to an encryption key we do not have")
    info = hpke_info(parsed.header.rn_from, parsed.header.rn_to, parsed.header.rn_id)
    plaintext = open_sealed(suite, key, parsed.outer.payload, info)
    inner = jws.parse_compact(plaintext, typ=TYP_INNER)
    inner_header = validate(InnerHeader, inner.header, what="inner header")
    for name in _ROUTING:
        if getattr(inner_header, name) != getattr(parsed.header, name):
            raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, f"inner {name} differs from the envelope's")
    return inner


def read_message(parsed: ParsedEnvelope, inner: jws.Jws, keys: PeerKeys) -> WireModel:
    """Verify the inner signature and validate the message."""
    inner.verify(keys.signing_key(inner.kid))
    data = loads_object(inner.payload, what="message")
    return validate(
        MESSAGE_MODELS[parsed.message_type],
        data,
        lenient=is_newer_minor(parsed.message_type, parsed.minor),
        what=parsed.message_type.value,
    )


@dataclass(frozen=True)
class OpenedEnvelope:
    parsed: ParsedEnvelope
    message: WireModel
    #: The sender's keys; for an introduction, learnt from the message itself.
    sender_keys: PeerKeys
    #: The verified inner compact JWS: the sender's signed statement, kept as evidence.
    inner_jws: bytes
    introduction: bool
    #: The key id of the sender's signing key that signed ``inner_jws``.
    inner_kid: str
    #: For an introduction, the sender's discovery document, verified: the one its
    #: ``requester_discovery`` carries, whose keys are ``sender_keys``.
    sender_discovery: Discovery | None = None


def open_envelope(
    raw: bytes | ParsedEnvelope,
    *,
    me: str,
    now: datetime,
    peer_keys: Callable[[str], PeerKeys | None],
    decryption_keys: Mapping[str, DecryptionKey],
    max_bytes: int = MAX_ENVELOPE_BYTES,
) -> OpenedEnvelope:
    """Every check a receiver makes, in the order the spec gives.

    ``peer_keys(node_id)`` returns the pinned keys of a connected (or connecting) peer,
    or None. A sender we have no keys for may only send an introduction (a
    ``connection-request``), which carries its signed discovery document.
    """
    parsed = raw if isinstance(raw, ParsedEnvelope) else parse_envelope(raw, max_bytes=max_bytes)
    keys = peer_keys(parsed.sender)
    if keys is not None:
        verify_outer(parsed, keys)
        try:
            check_addressing(parsed, me=me, now=now)
            inner = decrypt_inner(parsed, decryption_keys)
            message = read_message(parsed, inner, keys)
        except RemoteProtocolError as exc:
            exc.sender_verified = True
            raise
        return OpenedEnvelope(parsed, message, keys, _inner_bytes(inner), introduction=False, inner_kid=inner.kid)
    if parsed.message_type not in INTRODUCTION_TYPES:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_SENDER, f"no connection with {parsed.sender}")
    # An introduction: the sender's keys are inside. Addressing first (it is cheap and
    # refuses re-targeted copies), then decrypt, then verify both signatures with the
    # keys of the discovery document, which must belong to the claimed sender.
    check_addressing(parsed, me=me, now=now)
    inner = decrypt_inner(parsed, decryption_keys)
    request = validate(ConnectionRequest, loads_object(inner.payload, what="message"), lenient=is_newer_minor(parsed.message_type, parsed.minor))
    doc, keys = verify_discovery(request.requester_discovery.encode("utf-8"), expected_node_id=parsed.sender)
    verify_outer(parsed, keys)
    try:
        # What read_message does, but for the validation, done above with the same model
        inner.verify(keys.signing_key(inner.kid))
    except RemoteProtocolError as exc:
        exc.sender_verified = True
        raise
    return OpenedEnvelope(parsed, request, keys, _inner_bytes(inner), introduction=True, inner_kid=inner.kid,
                          sender_discovery=doc)


def _inner_bytes(inner: jws.Jws) -> bytes:
    return inner.signing_input + b"." + b64u_encode(inner.signature).encode("ascii")
