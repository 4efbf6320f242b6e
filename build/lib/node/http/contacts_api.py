"""Admin-API routes for the CRM's contacts: creating, listing, reading and changing them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.crm import store as crm
from node.crm.models import ContactIn, ContactPatch
from node.federation.runtime import Node
from node.http.api import Caller, Route, query_model
from node.http.crm_queries import ContactQuery
from node.http.json_answers import model_json, models_json


async def create_contact(request: web.Request, node: Node, caller: Caller, body: ContactIn) -> Any:
    contact = await node.transact(lambda conn, ctx: crm.create_contact(conn, body, now=ctx.now))
    return {"contact": model_json(contact)}


async def list_contacts(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    query = query_model(request, ContactQuery)
    contacts = await node.db.read(lambda conn: crm.list_contacts(conn, **query.model_dump()))
    return {"contacts": models_json(contacts), "limit": query.limit, "offset": query.offset}


async def get_contact(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    contact_id = request.match_info["id"]
    return {"contact": model_json(await node.db.read(lambda conn: crm.get_contact(conn, contact_id)))}


async def update_contact(
    request: web.Request, node: Node, caller: Caller, body: ContactPatch
) -> Any:
    contact_id = request.match_info["id"]
    contact = await node.transact(
        lambda conn, ctx: crm.update_contact(conn, contact_id, body, now=ctx.now)
    )
    return {"contact": model_json(contact)}


# fmt: off
ROUTES: list[Route] = [
    Route("POST", "/api/v1/contacts", create_contact, "Create a contact", ContactIn, status=201),
    Route("GET", "/api/v1/contacts", list_contacts,
          "List contacts, oldest first: ?q (names, email, phone), limit (default 100), offset",
          query=ContactQuery),
    Route("GET", "/api/v1/contacts/{id}", get_contact, "One contact"),
    Route("PATCH", "/api/v1/contacts/{id}", update_contact,
          "Change a contact's fields (null clears; address and custom_fields are replaced whole)",
          ContactPatch),
]
# fmt: on
