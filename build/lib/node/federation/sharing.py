"""What a referral shares and what it keeps, as a person reads it: the connections a deal
may be referred over (with the fields each allows), and field by field what an offer
carries and what stays behind (the console's preview, Blitz's details tab in green and
red; and the referral page's "what was shared").

Documents, custom fields, labels and history notes never travel (see
``protocol.offers.SHAREABLE_FIELDS``): the preview lists them on the side that stays, so
the person referring sees that they stay.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from node.base.money import money
from node.crm import store as crm
from node.crm.models import Deal
from node.federation.connection_settings import REQUIRED_FIELDS, SHAREABLE_FIELDS, parse_settings
from node.storage import store

#: Each shareable field as a person calls it.
FIELD_LABELS: dict[str, str] = {
    "deal.title": "Deal title",
    "deal.deal_type": "Deal type",
    "deal.amount": "Amount",
    "deal.summary": "Summary",
    "owner": "Deal owner (name and e-mail)",
    "contacts.first_name": "First name",
    "contacts.last_name": "Last name",
    "contacts.email": "E-mail address",
    "contacts.phone": "Phone",
    "contacts.address": "Address",
    "contacts.date_of_birth": "Date of birth",
}
#: How the client consented, in words (``Consent.method``).
CONSENT_WORDS: dict[str, str] = {
    "verbal": "verbal (in person or by phone)",
    "written": "written (signed)",
    "electronic": "electronic (e-mail, web form)",
}


def type_words(token: str | None) -> str:
    """A deal's or referral's type as stored, a lowercase token ("home-loan"), as people
    read it ("Home loan")."""
    return (token or "").replace("-", " ").replace("_", " ").strip().capitalize()


DEAL_FIELDS = tuple(f for f in SHAREABLE_FIELDS if not f.startswith("contacts."))
CONTACT_FIELDS = tuple(f for f in SHAREABLE_FIELDS if f.startswith("contacts."))

NOT_CHOSEN = "not chosen"
NOT_ALLOWED = "this connection does not allow it"
NEVER = "never sent"


@dataclass(frozen=True)
class Usable:
    """A connection this deal may be referred over."""

    id: str
    name: str
    #: The fields it allows, in the order of SHAREABLE_FIELDS (the title always).
    allowed: tuple[str, ...]
    referral_type: str | None


def usable_connections(conn: sqlite3.Connection, deal: Deal) -> list[Usable]:
    """Active connections that may send, and may be used from the deal's workflow (their
    outbound settings), by name."""
    usable = []
    for c in store.list_connections(conn):
        if not c.may_send:
            continue
        outbound = parse_settings(c.settings).outbound
        if outbound.workflow_ids and deal.workflow_id not in outbound.workflow_ids:
            continue
        allowed = set(outbound.allowed_fields) | set(REQUIRED_FIELDS)
        usable.append(Usable(c.id, c.name, tuple(f for f in SHAREABLE_FIELDS if f in allowed),
                             outbound.referral_type))
    return sorted(usable, key=lambda u: u.name.lower())


@dataclass(frozen=True)
class Item:
    label: str
    value: str
    #: For what stays: why.
    why: str = ""


@dataclass(frozen=True)
class Group:
    title: str
    items: list[Item] = field(default_factory=list)


@dataclass(frozen=True)
class Preview:
    travels: list[Group]
    stays: list[Group]


def _address(value: dict[str, Any] | None) -> str:
    if not value:
        return ""
    return ", ".join(str(v) for k in ("line1", "line2", "locality", "region", "postcode", "country")
                     if (v := value.get(k)))


def _deal_value(name: str, deal: dict[str, Any], owner: dict[str, Any] | None) -> str:
    if name == "owner":
        return f"{owner['name']} <{owner['email']}>" if owner else ""
    if name == "deal.amount":
        return money(deal.get("amount"), deal.get("currency"))
    return str(deal.get(name.split(".", 1)[1]) or "")


def _contact_value(name: str, contact: dict[str, Any]) -> str:
    key = name.split(".", 1)[1]
    if key == "address":
        return _address(contact.get("address"))
    return str(contact.get(key) or "")


def client_name(contact: dict[str, Any], fallback: str = "Client") -> str:
    return " ".join(p for p in (contact.get("first_name"), contact.get("last_name")) if p) or fallback


def carried(offer: dict[str, Any]) -> list[Group]:
    """What an offer (its wire form) carries, field by field: the deal, then each client."""
    shared = set(offer.get("shared_fields", [])) | set(REQUIRED_FIELDS)
    deal = [Item(FIELD_LABELS[f], _deal_value(f, offer["deal"], offer.get("owner")) or "(empty)")
            for f in DEAL_FIELDS if f in shared]
    groups = [Group("Deal", deal)]
    for n, contact in enumerate(offer.get("contacts", []), start=1):
        items = [Item(FIELD_LABELS[f], _contact_value(f, contact) or "(empty)") for f in CONTACT_FIELDS if f in shared]
        groups.append(Group(f"Client {n}" + (f" ({contact['role']})" if contact.get("role") != "primary" else ""),
                            items or [Item("Details", "none: only that there is a client")]))
    return groups


def preview(conn: sqlite3.Connection, deal: Deal, offer: dict[str, Any], allowed: tuple[str, ...]) -> Preview:
    """Field by field, what ``offer`` (as built for ``deal``) takes, and what stays here
    and why: not chosen, not allowed by the connection, no consent, or never sent."""
    shared = set(offer["shared_fields"]) | set(REQUIRED_FIELDS)
    consent = offer["consent"]
    about = Group("The referral", [
        Item("Referral type", offer["referral_type"]),
        Item("Referring agent", f"{offer['referring_agent']['name']} <{offer['referring_agent']['email']}>"),
        Item("Client consent", f"{consent['method']}, disclosure {consent['disclosure_version']} (its"
                               f" fingerprint, not its text), recorded by {consent['recorded_by']['name']}"),
    ] + ([Item("Message", offer["message"])] if offer.get("message") else []))
    travels = [about] + carried(offer)
    # Numbered as in ``carried``: the clients who consented, in the deal's order. Only
    # the side that stays names them as our records do.
    consented = [c.contact_id for c in deal.contacts if c.contact_id in consent["contact_refs"]]

    def why(name: str) -> str:
        return NOT_CHOSEN if name in allowed else NOT_ALLOWED

    owner = None
    if deal.owner_user_id:
        user = crm.get_user(conn, deal.owner_user_id)
        owner = {"name": user.name, "email": user.email}
    values = deal.model_dump(mode="json")
    deal_stays = [Item(FIELD_LABELS[f], _deal_value(f, values, owner) or "(empty)", why(f))
                  for f in DEAL_FIELDS if f not in shared]
    deal_stays += [Item(f"Custom field: {k}", str(v), NEVER) for k, v in sorted(deal.custom_fields.items())]
    if deal.labels:
        deal_stays.append(Item("Labels", ", ".join(deal.labels), NEVER))
    for label, value in (("Folder", deal.folder), ("Lead source", deal.source)):
        if value:
            deal_stays.append(Item(label, value, NEVER))
    documents = crm.list_documents(conn, deal.id)
    deal_stays.append(Item("Documents", "; ".join(f"{d.name}" + (f" ({d.label})" if d.label else "")
                                                  for d in documents) or "none on this deal", NEVER))
    notes = len(crm.list_notes(conn, deal_id=deal.id))
    deal_stays.append(Item("History notes", f"{notes} note{'s' if notes != 1 else ''}", NEVER))
    stays = [Group("Deal", deal_stays)]
    for link in deal.contacts:
        contact = crm.get_contact(conn, link.contact_id)
        data = contact.model_dump(mode="json")
        name = client_name(data, contact.display_name)
        if link.contact_id not in consented:
            stays.append(Group(f"Not referred: {name}", [Item("Everything", "this client's consent is not"
                                                              " recorded", "no consent")]))
            continue
        items = [Item(FIELD_LABELS[f], _contact_value(f, data) or "(empty)", why(f))
                 for f in CONTACT_FIELDS if f not in shared]
        items += [Item(f"Custom field: {k}", str(v), NEVER) for k, v in sorted(contact.custom_fields.items())]
        if items:
            stays.append(Group(f"Client {consented.index(link.contact_id) + 1}: {name}", items))
    return Preview(travels, stays)
