"""The fixed inputs of the test vectors: ``now``, the keys of nodes A, B and C, and the
message the envelope vectors carry.

Node A's identity key is the Ed25519 key of RFC 8037, Appendix A.1 (its RFC 7638
thumbprint, ``kPrK_qmx...``, is A's node id). Every other key is derived from a label:
``SHAKE256("refnode test vector" 0x00 label)``, as many bytes as the key needs. These are
test keys, published with the vectors: never use them for anything else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from protocol.discovery import PeerKeys, build_discovery, sign_discovery, verify_discovery
from protocol.encoding import b64u_decode, b64u_encode, dumps_canonical, loads_object
from protocol.envelope import Routing, sign_outer
from protocol.keys import DecryptionKey, SigningKey
from protocol.messages import Consent, ContactProfile, DealSummary, Person, ReferralOffer
from protocol.models import format_ts
from protocol.suites import SuiteId
from protocol.wire import MessageType

#: The ``now`` of every vector.
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)

#: RFC 8037, Appendix A.1: the Ed25519 private and public key, and (A.3) its thumbprint.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


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
        hybrid=DecryptionKey.mlkem768_x25519(derive(f"{label}/mlkem768x25519", 32)),
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
        shared_fields=[
            "deal.title",
            "deal.deal_type",
            "deal.amount",
            "deal.summary",
            "contacts.first_name",
            "contacts.last_name",
            "contacts.email",
            "contacts.phone",
        ],
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


#: Stands in for the sealed payload in vectors that are refused before decryption.
PLACEHOLDER_PAYLOAD = derive("placeholder sealed payload", 80)

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def flip_member(raw: bytes, member: str, index: int) -> bytes:
    """Change one base64url character (not the last, so it stays canonical) of a member."""
    obj = loads_object(raw)
    text: str = obj[member]
    if not 0 <= index < len(text) - 1:
        raise ValueError("index must leave the last character alone")
    new = _ALPHABET[(_ALPHABET.index(text[index]) + 1) % 64]
    obj[member] = text[:index] + new + text[index + 1 :]
    return dumps_canonical(obj)


def routing_a_to_b(envelope_id: str, nodes: dict[str, VectorNode], now: datetime = NOW) -> Routing:
    return Routing(
        MessageType.REFERRAL_OFFER, envelope_id, nodes["A"].node_id, nodes["B"].node_id, now
    )


def placeholder_envelope(
    nodes: dict[str, VectorNode],
    envelope_id: str,
    *,
    now: datetime = NOW,
    key: SigningKey | None = None,
) -> bytes:
    b_key = nodes["B"].x25519
    return sign_outer(
        PLACEHOLDER_PAYLOAD,
        routing_a_to_b(envelope_id, nodes, now),
        suite=SuiteId.X25519_CHACHA,
        enc_kid=b_key.kid,
        signing_key=key or nodes["A"].signing,
    )
