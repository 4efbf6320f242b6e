"""The messages the suite sends, valid as docs/protocol.md section 13 says; the negative
checks take these and change one thing."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from conformance.peer import Peer
from protocol.encoding import b64u_encode
from protocol.messages import ConnectionRequest, InvitationProof, Person
from protocol.models import format_ts
from protocol.wire import versioned

OFFER = versioned("referral-offer")
STATUS = versioned("referral-status")
REQUEST = versioned("connection-request")
ACCEPT = versioned("connection-accept")
CONFIRM = versioned("connection-confirm")
DISCONNECT = versioned("disconnect")
ROTATION = versioned("key-rotation")

TESTER = Person(name="Conformance Tester", email="tester@conformance.invalid")
DISCLOSURE = "Test disclosure: no real client is referred by the refnode conformance suite."


def request(peer: Peer, connection_id: str, *, invitation: tuple[str, str] | None = None,
            target_email: str | None = None, direction: str = "both") -> ConnectionRequest:
    return ConnectionRequest(
        connection_id=connection_id,
        requester_discovery=peer.discovery.decode("utf-8"),
        invitation=InvitationProof(invitation_id=invitation[0], secret=invitation[1]) if invitation else None,
        target_email=target_email,
        requested_by=TESTER,
        direction=direction,
        message="refnode conformance suite",
    )


def offer(connection_id: str, referral_id: str, now: datetime, **changes: Any) -> dict[str, Any]:
    """A referral offer that keeps every sharing and consent rule (section 14.5); a
    fictitious client. ``changes`` replace top-level members."""
    body: dict[str, Any] = {
        "referral_id": referral_id,
        "connection_id": connection_id,
        "referral_type": "home-loan",
        "deal": {"title": "Conformance check (no real client)"},
        "contacts": [{"ref": "ct_1", "role": "primary", "first_name": "Test", "last_name": "Client"}],
        "shared_fields": ["contacts.first_name", "contacts.last_name", "deal.title"],
        "referring_agent": TESTER.wire(),
        "consent": {
            "contact_refs": ["ct_1"],
            "consented_at": format_ts(now),
            "method": "electronic",
            "disclosure_version": "conformance-1",
            "disclosure_sha256": b64u_encode(hashlib.sha256(DISCLOSURE.encode()).digest()),
            "recorded_by": TESTER.wire(),
        },
        "sent_at": format_ts(now),
    }
    body.update(changes)
    return body


def status(referral_id: str, seq: int, state: str, now: datetime) -> dict[str, Any]:
    return {"referral_id": referral_id, "seq": seq, "status": state, "at": format_ts(now)}
