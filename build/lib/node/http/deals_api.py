"""Admin-API routes for the CRM's deals: creating, listing and changing them, moving them
between stages, the contacts on a deal, and its documents' metadata.

A deal changes stage only with ``POST /deals/{id}/move``, which runs the
``node.crm.events.on_deal_moved`` hooks in the same transaction.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from node.crm import events
from node.crm import store as crm
from node.crm.models import (
    Deal,
    DealContact,
    DealIn,
    DealPatch,
    DocumentIn,
    Id,
    Model,
    Name,
    Sha256,
    ShortText,
)
from node.crm.parsing import parse
from node.federation.outbox import TxContext
from node.federation.runtime import Node
from node.http.api import Caller, Route, query_model
from node.http.crm_queries import DealQuery, DocumentQuery, find_deals
from node.http.json_answers import model_json, models_json


class DealMove(Model):
    stage_id: Id
    #: To move the deal to a stage of another workflow; default: the deal's own workflow.
    workflow_id: Id | None = None


class DealPatchIn(DealPatch):
    """Only the fields given change; the stage changes with ``POST /deals/{id}/move``."""

    stage_id: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    workflow_id: SkipJsonSchema[Any] = Field(default=None, exclude=True)

    @field_validator("stage_id", "workflow_id")
    @classmethod
    def _moved_elsewhere(cls, value: Any) -> Any:
        raise ValueError("cannot be patched; move the deal with POST /api/v1/deals/{id}/move")


class DealDocumentIn(Model):
    """Metadata of a file kept with the deal; the bytes live elsewhere."""

    name: Name
    label: ShortText = ""
    size_bytes: Annotated[int, Field(ge=0, strict=True)]
    sha256: Sha256


async def create_deal(request: web.Request, node: Node, caller: Caller, body: DealIn) -> Any:
    deal = await node.transact(lambda conn, ctx: crm.create_deal(conn, body, now=ctx.now))
    return {"deal": model_json(deal)}


async def list_deals(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    query = query_model(request, DealQuery)
    deals = await node.db.read(lambda conn: find_deals(conn, query))
    return {"deals": models_json(deals), "limit": query.limit, "offset": query.offset}


async def get_deal(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    deal_id = request.match_info["id"]
    return {"deal": model_json(await node.db.read(lambda conn: crm.get_deal(conn, deal_id)))}


async def update_deal(request: web.Request, node: Node, caller: Caller, body: DealPatchIn) -> Any:
    deal_id = request.match_info["id"]
    deal = await node.transact(lambda conn, ctx: crm.update_deal(conn, deal_id, body, now=ctx.now))
    return {"deal": model_json(deal)}


async def move(node: Node, deal_id: str, body: DealMove) -> Deal:
    """Move a deal and run the node's deal-moved hooks, in one transaction: the one way a
    deal changes stage, for the API and the console alike."""

    def moving(conn: sqlite3.Connection, ctx: TxContext) -> Deal:
        before = crm.get_deal(conn, deal_id)
        after = crm.move_deal(
            conn, deal_id, body.stage_id, now=ctx.now, workflow_id=body.workflow_id
        )
        events.fire_deal_moved(conn, ctx, before, after, node.on_deal_moved)
        return crm.get_deal(conn, deal_id)  # as the hooks left it

    return await node.transact(moving)


async def move_deal(request: web.Request, node: Node, caller: Caller, body: DealMove) -> Any:
    return {"deal": model_json(await move(node, request.match_info["id"], body))}


async def attach_contact(
    request: web.Request, node: Node, caller: Caller, body: DealContact
) -> Any:
    deal_id = request.match_info["id"]
    deal = await node.transact(
        lambda conn, ctx: crm.attach_contact(
            conn, deal_id, body.contact_id, role=body.role, now=ctx.now
        )
    )
    return {"deal": model_json(deal)}


async def detach_contact(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    deal_id, contact_id = request.match_info["id"], request.match_info["contact_id"]
    deal = await node.transact(
        lambda conn, ctx: crm.detach_contact(conn, deal_id, contact_id, now=ctx.now)
    )
    return {"deal": model_json(deal)}


async def list_documents(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    query = query_model(request, DocumentQuery)
    deal_id = request.match_info["id"]
    documents = await node.db.read(
        lambda conn: crm.list_documents(conn, deal_id, label=query.label)
    )
    return {"documents": models_json(documents)}


async def add_document(
    request: web.Request, node: Node, caller: Caller, body: DealDocumentIn
) -> Any:
    deal_id = request.match_info["id"]

    def add(conn: sqlite3.Connection, ctx: TxContext) -> Any:
        crm.get_deal(conn, deal_id)
        return crm.add_document(
            conn, parse(DocumentIn, {"deal_id": deal_id, **body.model_dump()}), now=ctx.now
        )

    return {"document": model_json(await node.transact(add))}


# fmt: off
ROUTES: list[Route] = [
    Route("POST", "/api/v1/deals", create_deal, "Create a deal in a stage of a workflow", DealIn,
          status=201),
    Route("GET", "/api/v1/deals", list_deals,
          "List deals, oldest first: ?workflow_id, stage_id, owner_user_id, contact_id, folder, label,"
          " origin, q (title, summary, source, contacts' names and emails), limit (default 100), offset",
          query=DealQuery),
    Route("GET", "/api/v1/deals/{id}", get_deal, "One deal"),
    Route("PATCH", "/api/v1/deals/{id}", update_deal,
          "Change a deal's fields (null clears; labels, custom_fields and contacts are replaced whole)",
          DealPatchIn),
    Route("POST", "/api/v1/deals/{id}/move", move_deal,
          "Move a deal to a stage (of another workflow with workflow_id); runs the deal-moved hooks",
          DealMove),
    Route("POST", "/api/v1/deals/{id}/contacts", attach_contact,
          "Add a contact to a deal, or change their role on it", DealContact),
    Route("DELETE", "/api/v1/deals/{id}/contacts/{contact_id}", detach_contact,
          "Take a contact off a deal"),
    Route("GET", "/api/v1/deals/{id}/documents", list_documents, "A deal's documents (?label=)",
          query=DocumentQuery),
    Route("POST", "/api/v1/deals/{id}/documents", add_document,
          "Record a document's metadata on a deal (name, label, size_bytes, sha256)", DealDocumentIn,
          status=201),
]
# fmt: on
