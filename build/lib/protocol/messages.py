"""One frozen model per message. These are the payloads that travel inside envelopes,
plus the signed documents (discovery, receipt) and the invitation a person hands over.

Field names are wire names. Every field is documented in docs/protocol.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictInt, StringConstraints, model_validator

from protocol.models import (
    Currency,
    Decimal,
    Digest,
    Email,
    Ident,
    LongText,
    NodeId,
    ShortText,
    Timestamp,
    Token,
    WireModel,
)
from protocol.suites import SuiteId
from protocol.wire import Disposition, DocumentType, MessageType

# --- discovery -------------------------------------------------------------------------


class PublicJwk(WireModel):
    kty: Literal["OKP"]
    crv: Literal["Ed25519", "X25519", "MLKEM768-X25519"]
    x: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", max_length=2000)]


class KeyEntry(WireModel):
    """One published key. ``use`` is ``sig`` (Ed25519) or ``enc`` (HPKE, with its suite).

    ``status``: ``active`` keys are used; ``retired`` signing keys are kept so that old
    signatures and receipts still verify, but new envelopes signed with them are refused.
    """

    kid: Digest
    use: Literal["sig", "enc"]
    jwk: PublicJwk
    suite: SuiteId | None = None
    status: Literal["active", "retired"] = "active"


class Endpoints(WireModel):
    inbox: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2000)]


class Discovery(WireModel):
    """Who a node is. Signed by its identity key (``kid`` = ``node_id``)."""

    type: Annotated[str, StringConstraints(pattern=r"^discovery/1\.[0-9]+$")]
    node_id: NodeId
    name: ShortText
    endpoints: Endpoints
    versions: list[StrictInt] = Field(min_length=1)
    suites: list[SuiteId] = Field(min_length=1)
    keys: list[KeyEntry] = Field(min_length=2, max_length=32)
    max_envelope_bytes: StrictInt = Field(ge=65536)
    issued_at: Timestamp


# --- connection handshake --------------------------------------------------------------


class Person(WireModel):
    name: ShortText
    email: Email


class InvitationProof(WireModel):
    """The invitation being redeemed; ``secret`` is the referral key's 32 bytes, base64url.
    It only ever travels inside the encrypted payload, sealed to the inviter's pinned key."""

    invitation_id: Ident
    secret: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]


Direction = Literal["send", "receive", "both"]


class ConnectionRequest(WireModel):
    """The first message from a node that is not yet connected to the recipient.

    ``requester_discovery`` is the requester's signed discovery document (the flattened JWS
    as a string): it is how the recipient learns the requester's keys. Exactly one of
    ``invitation`` (the inviter gave us a referral URL and key) and ``target_email`` (we ask
    one of the recipient's active users to accept) is present. ``direction`` is the flow
    of referrals the requester asks for, seen from the requester.
    """

    connection_id: Ident
    requester_discovery: Annotated[str, StringConstraints(max_length=65536)]
    invitation: InvitationProof | None = None
    target_email: Email | None = None
    requested_by: Person
    direction: Direction
    message: LongText = ""

    @model_validator(mode="after")
    def _exactly_one_target(self) -> ConnectionRequest:
        if (self.invitation is None) == (self.target_email is None):
            raise ValueError("give exactly one of invitation and target_email")
        return self


class ConnectionAccept(WireModel):
    connection_id: Ident
    direction: Direction  # as granted, seen from the requester
    accepted_by: Person
    name: ShortText  # the responder's organisation name, for display


#: An error code or refusal reason: the codes of the spec's table, or codes a later minor
#: adds (so an older receiver does not refuse a receipt that carries a newer code).
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{0,63}$")]


class ConnectionRefuse(WireModel):
    connection_id: Ident
    reason: Code  # "declined", or an error code
    message: LongText = ""


class ConnectionConfirm(WireModel):
    connection_id: Ident


class Disconnect(WireModel):
    connection_id: Ident
    reason: LongText = ""


class KeyRotation(WireModel):
    """Announces a new key set: ``discovery`` is the new signed discovery document."""

    discovery: Annotated[str, StringConstraints(max_length=65536)]


# --- referrals -------------------------------------------------------------------------


class Address(WireModel):
    line1: ShortText | None = None
    line2: ShortText | None = None
    locality: ShortText | None = None
    region: ShortText | None = None
    postcode: Annotated[str, StringConstraints(max_length=20)] | None = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None


class ContactProfile(WireModel):
    """A client. Only the members the referrer chose to share are present."""

    ref: Ident  # the sender's id for this contact, stable across referrals
    role: Literal["primary", "co-applicant", "other"] = "primary"
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    email: Email | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()-]{3,32}$")] | None = None
    address: Address | None = None
    date_of_birth: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")] | None = None


class DealSummary(WireModel):
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    deal_type: Token | None = None
    amount: Decimal | None = None
    currency: Currency | None = None  # required with amount: money has a currency
    summary: LongText | None = None

    @model_validator(mode="after")
    def _currency_with_amount(self) -> DealSummary:
        if (self.amount is None) != (self.currency is None):
            raise ValueError("amount and currency go together")
        return self


class Consent(WireModel):
    """The client's consent to be referred: who, when, how, and which privacy disclosure
    they were shown (its version and the SHA-256 of its exact text)."""

    contact_refs: list[Ident] = Field(min_length=1)
    consented_at: Timestamp
    method: Literal["verbal", "written", "electronic"]
    disclosure_version: ShortText
    disclosure_sha256: Digest
    recorded_by: Person


class ReferralOffer(WireModel):
    referral_id: Ident
    connection_id: Ident
    referral_type: Token
    deal: DealSummary
    contacts: list[ContactProfile] = Field(min_length=1, max_length=20)
    shared_fields: list[Annotated[str, StringConstraints(pattern=r"^[a-z_.]{1,64}$")]]
    owner: Person | None = None  # the deal's owner at the sender, if shared
    referring_agent: Person
    message: LongText = ""
    consent: Consent
    sent_at: Timestamp


ReferralStatusName = Literal[
    "received", "accepted", "declined", "in-progress", "won", "lost", "withdrawn"
]


class ReferralStatus(WireModel):
    """Progress reported by the receiver. ``seq`` starts at 1 and grows by one per update
    of one referral, so the referrer applies updates in order and at most once."""

    referral_id: Ident
    seq: StrictInt = Field(ge=1)
    status: ReferralStatusName
    stage: ShortText | None = None
    reason: LongText | None = None
    at: Timestamp


class EnterprisePartner(WireModel):
    """A parent organisation adds one of its partners to a child organisation (Appendix D):
    the partner's profile, never a password or any other secret. The child creates (or
    finds) the account and invites the partner itself, per its own settings."""

    connection_id: Ident  # the parent -> child connection it travels on
    partner_ref: Ident  # the parent's id for this partner, stable across messages
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    email: Email
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()-]{3,32}$")]
    added_by: Person  # the parent's admin who added them
    sent_at: Timestamp


MESSAGE_MODELS: dict[MessageType, type[WireModel]] = {
    MessageType.CONNECTION_REQUEST: ConnectionRequest,
    MessageType.CONNECTION_ACCEPT: ConnectionAccept,
    MessageType.CONNECTION_REFUSE: ConnectionRefuse,
    MessageType.CONNECTION_CONFIRM: ConnectionConfirm,
    MessageType.REFERRAL_OFFER: ReferralOffer,
    MessageType.REFERRAL_STATUS: ReferralStatus,
    MessageType.KEY_ROTATION: KeyRotation,
    MessageType.DISCONNECT: Disconnect,
    MessageType.ENTERPRISE_PARTNER: EnterprisePartner,
}

#: Message types a node accepts from a sender it has no connection with.
INTRODUCTION_TYPES = frozenset({MessageType.CONNECTION_REQUEST})

# --- receipts --------------------------------------------------------------------------


class ReceiptError(WireModel):
    code: Code
    message: LongText


class Receipt(WireModel):
    """Signed by the recipient: what it did with the exact bytes it received."""

    type: Annotated[str, StringConstraints(pattern=r"^receipt/1\.[0-9]+$")]
    envelope_id: Ident
    envelope_sha256: Digest
    from_: NodeId = Field(alias="from")  # the recipient, who signs the receipt
    to: NodeId  # the sender of the envelope
    disposition: Disposition
    error: ReceiptError | None = None
    received_at: Timestamp

    @model_validator(mode="after")
    def _error_iff_rejected(self) -> Receipt:
        if (self.disposition is Disposition.REJECTED) != (self.error is not None):
            raise ValueError("a rejected receipt, and only a rejected one, carries an error")
        return self


# --- invitation ------------------------------------------------------------------------


class Invitation(WireModel):
    """What an inviting admin hands to the other organisation, out of band, as a referral
    URL and a referral key (see protocol.invitations)."""

    type: Annotated[str, StringConstraints(pattern=r"^invitation/1\.[0-9]+$")]
    #: No trailing "/": the referral URL appends "/refnode/v1/..." to it (spec 11.1).
    base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^?#]*[^/?#]$", max_length=2000)]
    invitation_id: Ident
    node_id: NodeId
    secret: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]


DOCUMENT_MODELS: dict[DocumentType, type[WireModel]] = {
    DocumentType.DISCOVERY: Discovery,
    DocumentType.RECEIPT: Receipt,
    DocumentType.INVITATION: Invitation,
}
