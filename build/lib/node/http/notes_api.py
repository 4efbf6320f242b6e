"""Admin-API routes for the CRM's notes: on a deal (with ``contact_id``, about one of the
deal's contacts, so it shows on the contact too) and on a contact."""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any

from aiohttp import web
from pydantic import StringConstraints

from node.base.inputs import PlainText
from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.models import Id, Model, NoteIn
from node.crm.parsing import parse
from node.federation.outbox import TxContext
from node.federation.runtime import Node
from node.http.api import Caller, Route
from node.http.json_answers import model_json, models_json

NoteText = Annotated[str, StringConstraints(min_length=1, max_length=8000), PlainText(multiline=True, max_length=8000)]


class ContactNoteIn(Model):
    body: NoteText


class DealNoteIn(Model):
    body: NoteText
    #: A note about one contact of the deal: it shows on the deal and on the contact.
    contact_id: Id | None = None


async def list_deal_notes(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    deal_id = request.match_info["id"]
    return {"notes": models_json(await node.db.read(lambda conn: crm.list_notes(conn, deal_id=deal_id)))}


async def add_deal_note(request: web.Request, node: Node, caller: Caller, body: DealNoteIn) -> Any:
    deal_id = request.match_info["id"]

    def add(conn: sqlite3.Connection, ctx: TxContext) -> Any:
        deal = crm.get_deal(conn, deal_id)  # an unknown id is a 404 whatever it looks like
        if body.contact_id is not None and all(
            c.contact_id != body.contact_id for c in deal.contacts
        ):
            crm.get_contact(conn, body.contact_id, field="contact_id")
            raise CrmError(
                "invalid",
                f"contact {body.contact_id!r} is not on deal {deal_id!r}; add them "
                "with POST /api/v1/deals/{id}/contacts first",
                "contact_id",
            )
        data = parse(NoteIn, {"deal_id": deal_id, "contact_id": body.contact_id, "body": body.body})
        return crm.add_note(conn, data, now=ctx.now, author_user_id=caller.id)

    return {"note": model_json(await node.transact(add))}


async def list_contact_notes(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    contact_id = request.match_info["id"]
    return {
        "notes": models_json(
            await node.db.read(lambda conn: crm.list_notes(conn, contact_id=contact_id))
        )
    }


async def add_contact_note(
    request: web.Request, node: Node, caller: Caller, body: ContactNoteIn
) -> Any:
    contact_id = request.match_info["id"]

    def add(conn: sqlite3.Connection, ctx: TxContext) -> Any:
        crm.get_contact(conn, contact_id)
        data = parse(NoteIn, {"contact_id": contact_id, "body": body.body})
        return crm.add_note(conn, data, now=ctx.now, author_user_id=caller.id)

    return {"note": model_json(await node.transact(add))}


# fmt: off
ROUTES: list[Route] = [
    Route("GET", "/api/v1/deals/{id}/notes", list_deal_notes, "A deal's notes, oldest first"),
    Route("POST", "/api/v1/deals/{id}/notes", add_deal_note,
          "Add a note to a deal (with contact_id: about one of its contacts)", DealNoteIn, status=201),
    Route("GET", "/api/v1/contacts/{id}/notes", list_contact_notes,
          "A contact's notes (their deals' notes about them included), oldest first"),
    Route("POST", "/api/v1/contacts/{id}/notes", add_contact_note, "Add a note to a contact",
          ContactNoteIn, status=201),
]
# fmt: on
