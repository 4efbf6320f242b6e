"""Every name that appears on the wire, in one place.

Message types, error codes, header names, media types, paths and limits. The spec
(docs/protocol.md) documents each of them; a test checks that it does.
"""

from __future__ import annotations

from enum import StrEnum

PROTOCOL_NAME = "refnode"
#: Major protocol versions this implementation speaks. The major is in the path and in
#: every envelope; minors are carried per message type.
SUPPORTED_MAJORS: tuple[int, ...] = (1,)
MAJOR = 1

#: Path prefix of every federation endpoint for major version 1.
BASE_PATH = "/refnode/v1"
DISCOVERY_PATH = "/.well-known/refnode"
INBOX_PATH = f"{BASE_PATH}/inbox"
INVITATION_PATH = f"{BASE_PATH}/invitations"  # + "/{invitation_id}", only used in referral URLs

#: Media type of a JWS in the flattened JSON serialization (RFC 7515, section 9.2.1).
MEDIA_TYPE_JOSE_JSON = "application/jose+json"
#: Media type of an error body.
MEDIA_TYPE_PROBLEM = "application/json"

#: JWS "typ" values (RFC 7515, section 4.1.9) that separate the signed objects.
TYP_ENVELOPE = "refnode-envelope+jws"
TYP_INNER = "refnode-message+jws"
TYP_RECEIPT = "refnode-receipt+jws"
TYP_DISCOVERY = "refnode-discovery+jws"

#: Upper bound on the body of a POST to the inbox, in bytes.
MAX_ENVELOPE_BYTES = 1_048_576
#: How old an envelope's "iat" may be when it arrives, in seconds (7 days). A receiver
#: keeps (sender, envelope id) for de-duplication at least until "iat" + this + the skew.
MAX_ENVELOPE_AGE_S = 7 * 24 * 3600
#: How far into the future an envelope's "iat" may be, in seconds (clock skew).
MAX_CLOCK_SKEW_S = 300
#: Strict JSON (spec 3.2): containers (objects and arrays) nest at most this deep; the
#: outermost object is at depth 1.
MAX_JSON_DEPTH = 32
#: Strict JSON: integers are within what an IEEE 754 double holds exactly (I-JSON).
MAX_JSON_INTEGER = 2**53 - 1


class MessageType(StrEnum):
    """Message types, without their version. On the wire: ``name/major.minor``."""

    CONNECTION_REQUEST = "connection-request"
    CONNECTION_ACCEPT = "connection-accept"
    CONNECTION_REFUSE = "connection-refuse"
    CONNECTION_CONFIRM = "connection-confirm"
    REFERRAL_OFFER = "referral-offer"
    REFERRAL_STATUS = "referral-status"
    KEY_ROTATION = "key-rotation"
    DISCONNECT = "disconnect"
    ENTERPRISE_PARTNER = "enterprise-partner"


class DocumentType(StrEnum):
    """Signed objects that are not envelopes, and the invitation a person hands over."""

    DISCOVERY = "discovery"
    RECEIPT = "receipt"
    INVITATION = "invitation"


#: Minor version this implementation writes for each major-1 message type.
MESSAGE_MINOR: dict[str, int] = {t.value: 0 for t in MessageType} | {
    d.value: 0 for d in DocumentType
}


def versioned(name: str, major: int = MAJOR) -> str:
    """The wire form ``name/major.minor`` of a message or document type."""
    return f"{name}/{major}.{MESSAGE_MINOR[name]}"


class ErrorCode(StrEnum):
    """Stable error codes. A code never changes meaning; new ones may be added."""

    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    UNKNOWN_SENDER = "unknown_sender"
    WRONG_RECIPIENT = "wrong_recipient"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    REPLAYED = "replayed"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNSUPPORTED_TYPE = "unsupported_type"
    UNSUPPORTED_SUITE = "unsupported_suite"
    DECRYPT_FAILED = "decrypt_failed"
    NOT_CONNECTED = "not_connected"
    DIRECTION_NOT_ALLOWED = "direction_not_allowed"
    INVITATION_INVALID = "invitation_invalid"
    INVITATION_EXPIRED = "invitation_expired"
    INVITATION_USED = "invitation_used"
    INVITATION_REVOKED = "invitation_revoked"
    UNKNOWN_USER = "unknown_user"
    UNKNOWN_SUBJECT = "unknown_subject"
    INVALID_TRANSITION = "invalid_transition"
    OUT_OF_ORDER = "out_of_order"
    CONSENT_REQUIRED = "consent_required"
    FIELD_NOT_ALLOWED = "field_not_allowed"
    FINGERPRINT_MISMATCH = "fingerprint_mismatch"
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"


class Disposition(StrEnum):
    """What a receiver did with an envelope, as stated in its receipt."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


#: Header parameters of the outer JWS (protected header) that this protocol defines,
#: beside the registered "alg", "kid" and "typ".
HDR_VERSION = "rn_v"
HDR_ID = "rn_id"
HDR_TYPE = "rn_type"
HDR_FROM = "rn_from"
HDR_TO = "rn_to"
HDR_IAT = "rn_iat"
HDR_REPLY_TO = "rn_reply_to"
HDR_SUITE = "rn_suite"
HDR_ENC_KID = "rn_enc_kid"
