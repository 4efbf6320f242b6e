"""Contacts and search.

- ``/contacts``: every contact by name, a page at a time; ``/contacts/{id}``: a contact
  with their deals and notes; new and edit forms (GOV.UK pattern, the API's models:
  ``ContactIn``, ``ContactPatch``). A new contact made from a deal's page
  (``/contacts/new?deal=<id>``) is put on that deal in the same transaction;
- ``/search?q=``: deals (by title, or by their contacts) and contacts (by name, e-mail
  or phone), a few of each, linked to their pages.

Brokers and admins alike, as the API's contact routes.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from node.base.money import money
from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.models import Contact, ContactIn, ContactPatch, NoteIn
from node.crm.parsing import parse
from node.crm.store import board as boards
from node.http.notes_api import ContactNoteIn
from node.portal import client_data
from node.web.deals_pages import contact_of, deal_of
from node.web.form_errors import crm_errors, in_order, validation_errors
from node.web.views import Pages, View

pages = Pages()

PER_PAGE = 50
#: Deals and contacts a search shows, each.
FOUND = 20

ADDRESS = ("line1", "line2", "locality", "region", "postcode", "country")
LABELS = {
    "first_name": "First name", "last_name": "Last name", "email": "E-mail address", "phone": "Phone number",
    "date_of_birth": "Date of birth", "address_line1": "Address line 1", "address_line2": "Address line 2",
    "address_locality": "Town or suburb", "address_region": "State or region", "address_postcode": "Postcode",
    "address_country": "Country",
}
ALIASES = {f"address.{part}": f"address_{part}" for part in ADDRESS}
#: The rules of these fields, in plain words, whatever was wrong.
MESSAGES = {
    "email": "Enter an e-mail address like name@example.com",
    "phone": "Enter a phone number in digits, spaces, ( ) - and a leading +, such as +61 400 000 000",
    "date_of_birth": "Enter the date of birth as year-month-day, such as 1984-03-27",
    "address_country": "Enter the country as two letters, such as AU",
}


def _values(view: View) -> dict[str, str]:
    values = {name: view.value(name) for name in LABELS}
    values["address_country"] = values["address_country"].upper()
    return values


def _data(values: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {k: values[k] for k in ("first_name", "last_name", "email", "phone", "date_of_birth")}
    data["address"] = {part: values[f"address_{part}"] for part in ADDRESS}
    return data


def _check(values: dict[str, str], model: type[ContactIn] | type[ContactPatch]) -> tuple[Any, dict[str, str]]:
    if not (values["first_name"] or values["last_name"] or values["email"]):
        return None, {"first_name": "Enter a first name, a last name or an e-mail address"}
    try:
        return model.model_validate(_data(values)), {}
    except ValidationError as exc:
        return None, validation_errors(exc, LABELS, aliases=ALIASES, messages=MESSAGES, fallback="first_name")


def _offset(view: View) -> int:
    raw = view.request.query.get("offset", "0")
    if not raw.isdigit() or len(raw) > 9:
        raise CrmError("invalid", "offset must be a whole number", "offset")
    return int(raw)


@pages.get("/contacts", "contacts.html")
async def contacts(view: View) -> dict[str, Any]:
    offset = _offset(view)
    total, shown = await view.node.db.read(lambda conn: boards.contacts_by_name(conn, limit=PER_PAGE, offset=offset))
    return {"total": total, "contacts": shown, "offset": offset, "per_page": PER_PAGE}


def _form(values: dict[str, str], errors: dict[str, str], *,
                contact: Contact | None = None, deal: Any = None) -> dict[str, Any]:
    return {"values": values, "errors": in_order(errors, LABELS), "contact": contact, "deal": deal}


async def _deal_for(view: View, deal_id: str) -> Any:
    return await view.node.db.read(lambda conn: deal_of(conn, deal_id)) if deal_id else None


@pages.get("/contacts/new", "contact_form.html")
async def new_contact(view: View) -> dict[str, Any]:
    deal = await _deal_for(view, view.request.query.get("deal", ""))
    return _form(dict.fromkeys(LABELS, ""), {}, deal=deal)


@pages.post("/contacts/new")
async def create_contact(view: View) -> web.StreamResponse:
    values = _values(view)
    deal = await _deal_for(view, view.value("deal"))
    data, errors = _check(values, ContactIn)
    if errors:
        return view.render("contact_form.html", _form(values, errors, deal=deal), status=400)

    def create(conn: sqlite3.Connection, ctx: Any) -> Contact:
        contact = crm.create_contact(conn, data, now=ctx.now)
        if deal is not None:
            role = "primary" if not crm.get_deal(conn, deal.id).contacts else "co-applicant"
            crm.attach_contact(conn, deal.id, contact.id, role=role, now=ctx.now)
        return contact

    contact = await view.node.transact(create)
    if deal is not None:
        return view.redirect(f"/deals/{deal.id}#contacts", f"{contact.display_name} is added to this deal.")
    return view.redirect(f"/contacts/{contact.id}", f"{contact.display_name} is added to your contacts.")


@pages.get("/contacts/{id}", "contact.html")
async def contact(view: View) -> dict[str, Any]:
    contact_id = view.request.match_info["id"]

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        found = contact_of(conn, contact_id)
        notes = crm.list_notes(conn, contact_id=contact_id)[-200:]
        authors = {u.id: u.name for u in crm.list_users(conn)}
        return {"contact": found, "deals": boards.contact_deals(conn, contact_id, limit=100),
                "places": boards.stage_places(conn),
                "notes": [{**n.model_dump(), "author": authors.get(n.author_user_id or "")} for n in reversed(notes)],
                "portal": client_data.contact_answers(conn, contact_id)}

    return {**await view.node.db.read(read), "money": money, "errors": {}}


@pages.post("/contacts/{id}/notes", multiline=("body",))
async def add_note(view: View) -> web.StreamResponse:
    contact_id = view.request.match_info["id"]
    text = view.form.get("body", "").strip()
    if not text:
        raise CrmError("invalid", "Enter the note before adding it.", "body")
    body = parse(ContactNoteIn, {"body": text})

    def add(conn: sqlite3.Connection, ctx: Any) -> None:
        contact_of(conn, contact_id)
        crm.add_note(conn, parse(NoteIn, {"contact_id": contact_id, "body": body.body}), now=ctx.now,
                     author_user_id=view.user.id)

    await view.node.transact(add)
    return view.redirect(f"/contacts/{contact_id}#notes", "Your note is added.")


@pages.get("/contacts/{id}/edit", "contact_form.html")
async def edit_contact(view: View) -> dict[str, Any]:
    found = await view.node.db.read(lambda conn: contact_of(conn, view.request.match_info["id"]))
    values = {k: getattr(found, k) or "" for k in ("first_name", "last_name", "email", "phone", "date_of_birth")}
    values.update({f"address_{p}": getattr(found.address, p) or "" for p in ADDRESS})
    return _form(values, {}, contact=found)


@pages.post("/contacts/{id}/edit")
async def save_contact(view: View) -> web.StreamResponse:
    contact_id = view.request.match_info["id"]
    found = await view.node.db.read(lambda conn: contact_of(conn, contact_id))
    values = _values(view)
    patch, errors = _check(values, ContactPatch)
    if not errors:
        try:
            saved = await view.node.transact(lambda conn, ctx: crm.update_contact(conn, contact_id, patch, now=ctx.now))
            return view.redirect(f"/contacts/{saved.id}", "Your changes are saved.")
        except CrmError as exc:
            errors = crm_errors(exc, LABELS, aliases=ALIASES, fallback="first_name")
    return view.render("contact_form.html", _form(values, errors, contact=found), status=400)


@pages.get("/search", "search.html")
async def search(view: View) -> dict[str, Any]:
    q = view.request.query.get("q", "").strip()[:200]

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        if not q:
            return {"contacts": [], "deals": [], "places": {}}
        found = boards.search_contacts(conn, q, limit=FOUND)
        return {"contacts": found, "deals": boards.search_deals(conn, q, [c.id for c in found], limit=FOUND),
                "places": boards.stage_places(conn)}

    return {"q": q, "found": FOUND, "money": money, **await view.node.db.read(read)}
