"""Admin-API routes for referring deals from the CRM, deferred referrals, recall (refused)
and connection settings."""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from node.base.errors import ApiError
from node.crm import store as crm
from node.crm.fields import Id
from node.federation import referring
from node.federation.connection_settings import ConnectionSettings, parse_settings, update_settings
from node.federation.outbox import TxContext
from node.federation.runtime import Node
from node.http.api import Caller, In, Route, query_model
from node.storage import store


class DeferredQuery(In):
    deal_id: Id | None = None


async def refer(request: web.Request, node: Node, caller: Caller, body: referring.ReferDealIn) -> Any:
    deal_id = request.match_info["id"]

    def run(conn: sqlite3.Connection, ctx: TxContext) -> Any:
        return referring.refer_deal(conn, ctx, deal_id, body, crm.get_user(conn, caller.id))

    result = await node.transact(run)
    if "deferred" in result:
        return web.json_response(result, status=201)
    return result


async def list_deferred(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    deal_id = query_model(request, DeferredQuery).deal_id

    def read(conn: sqlite3.Connection) -> Any:
        if deal_id:
            crm.get_deal(conn, deal_id, field="deal_id")
        return referring.list_deferred(conn, deal_id)

    return {"deferred": await node.db.read(read)}


async def cancel_deferred(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    deferred_id = request.match_info["id"]
    return {"deferred": await node.transact(lambda conn, ctx: referring.cancel_deferred(conn, ctx, deferred_id))}


async def recall(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    local_id = request.match_info["id"]
    await node.db.read(lambda conn: referring.recall(conn, local_id))


async def get_settings(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    cid = request.match_info["id"]
    c = await node.db.read(lambda conn: store.get_connection(conn, cid))
    if c is None:
        raise ApiError(404, "unknown_subject", f"no connection {cid}")
    return {"settings": parse_settings(c.settings).model_dump(mode="json")}


async def put_settings(request: web.Request, node: Node, caller: Caller, body: ConnectionSettings) -> Any:
    cid = request.match_info["id"]
    settings = await node.transact(lambda conn, ctx: update_settings(conn, cid, body, now=ctx.ts))
    return {"settings": settings.model_dump(mode="json")}


ROUTES: list[Route] = [
    Route("POST", "/api/v1/deals/{id}/refer", refer,
          "Refer a deal now, or when it reaches a stage (when_stage_id); consent is required",
          referring.ReferDealIn, status=202, also=(201,)),
    Route("GET", "/api/v1/deferred", list_deferred, "Deferred referrals (optionally of one deal_id)",
          query=DeferredQuery),
    Route("POST", "/api/v1/deferred/{id}/cancel", cancel_deferred, "Cancel a deferred referral before it is sent"),
    Route("DELETE", "/api/v1/referrals/{id}", recall, "Recall a referral: always refused once sent"),
    Route("GET", "/api/v1/connections/{id}/settings", get_settings, "Inbound and outbound settings of a connection"),
    Route("PATCH", "/api/v1/connections/{id}/settings", put_settings,
          "Change where inbound referrals land and what outbound ones may share: only the fields sent"
          " change (objects merge, lists and values replace)", ConnectionSettings, admin_only=True),
    Route("PUT", "/api/v1/connections/{id}/settings", put_settings,
          "The same as PATCH (kept for 0.1 clients): only the fields sent change", ConnectionSettings,
          admin_only=True),
]
