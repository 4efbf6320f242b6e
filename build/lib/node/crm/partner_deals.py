"""A deal a partner creates in the portal (issue 13): its clients, its owner (one of the
partner's brokers), the portal's default workflow, and the client's consent.

The consent is recorded as a referral's is: the protocol's ``Consent`` (which clients,
when, how, the privacy disclosure's version and the SHA-256 of its exact text, and who
recorded it), so that reports and the audit trail treat both alike.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from node.crm import partners, portal
from node.crm import store as crm
from node.crm.access import Caller
from node.crm.errors import CrmError
from node.crm.models import ContactIn, Deal, DealContact, DealIn, NoteIn
from node.crm.parsing import parse
from protocol.encoding import b64u_encode
from protocol.messages import Consent, Person
from protocol.models import format_ts


@dataclass(frozen=True)
class NewClient:
    first_name: str
    last_name: str
    email: str
    phone: str


def disclosure_sha256(text: str) -> str:
    """As a referral's consent has it: base64url of the SHA-256 of the exact text."""
    return b64u_encode(hashlib.sha256(text.encode("utf-8")).digest())


def create_deal(conn: sqlite3.Connection, partner: Caller, *, title: str, owner_id: str, clients: list[NewClient],
                message: str, consented: bool, now: datetime) -> Deal:
    """The deal, its clients as new contacts, the partner's access, the consent record,
    the partner's message as their note, and a line in their activity."""
    if not clients:
        raise CrmError("invalid", "Add at least one client.", "clients")
    if not consented:
        raise CrmError("invalid", "Confirm that the client agreed to be contacted.", "consent")
    me = partners.get_partner(conn, partner.id)
    if owner_id not in me.broker_ids:
        raise CrmError("invalid", "Choose one of your brokers.", "owner_id")
    settings = portal.settings(conn)
    if settings.default_workflow_id is None:
        raise CrmError("invalid", "The organisation has not chosen where partners' deals go yet. Ask your broker.",
                       "title")
    workflow = crm.get_workflow(conn, settings.default_workflow_id)
    contact_ids = []
    for client in clients:
        contact = crm.create_contact(conn, parse(ContactIn, {
            "first_name": client.first_name, "last_name": client.last_name, "email": client.email,
            "phone": client.phone}), now=now)
        contact_ids.append(contact.id)
    title = title or f"{clients[0].first_name} {clients[0].last_name}"
    deal = crm.create_deal(conn, parse(DealIn, {
        "title": title, "workflow_id": workflow.id, "stage_id": workflow.stages[0].id, "owner_user_id": owner_id,
        "source": f"Partner portal: {me.name}"[:200],
        "contacts": [DealContact(contact_id=c, role="primary" if i == 0 else "co-applicant")
                     for i, c in enumerate(contact_ids)]}), now=now)
    partners.share_deal(conn, deal.id, partner.id, by=partner.id, how="created", now=now)
    consent = Consent(contact_refs=contact_ids, consented_at=format_ts(now), method="electronic",
                      disclosure_version=settings.disclosure_version,
                      disclosure_sha256=disclosure_sha256(settings.disclosure_text),
                      recorded_by=Person(name=me.name, email=me.email))
    partners.record_consent(conn, deal.id, partner.id, consent.model_dump(mode="json"), now)
    if message:
        crm.add_note(conn, parse(NoteIn, {"deal_id": deal.id, "body": message}), now=now, author_user_id=partner.id)
    partners.record(conn, partner.id, "Created a deal", now, deal_id=deal.id,
                    detail=f"{len(clients)} client{'s' if len(clients) > 1 else ''}, owner "
                           + dict(me.brokers)[owner_id])
    return deal
