"""The admin API's routes for referral opportunities; the rules are in
:mod:`node.federation.opportunities`."""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from node.federation import referring
from node.federation.opportunities import (
    CloseIn,
    ListQuery,
    Opportunity,
    OpportunityIn,
    close_opportunity,
    convert_opportunity,
    get_opportunity,
    list_opportunities,
    record_opportunity,
)
from node.federation.runtime import Node
from node.http.api import Caller, Route, query_model


async def record(request: web.Request, node: Node, caller: Caller, body: OpportunityIn) -> Any:
    opportunity = await node.transact(
        lambda conn, ctx: record_opportunity(conn, body, actor_id=caller.id, now=ctx.now))
    return {"opportunity": opportunity.model_dump(mode="json")}


async def follow_up_list(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    query = query_model(request, ListQuery)
    state = None if query.state == "all" else query.state

    def read(conn: sqlite3.Connection) -> list[Opportunity]:
        return list_opportunities(conn, state=state, due_by=query.due_by, referral_type=query.referral_type,
                                  deal_id=query.deal_id)

    return {"opportunities": [o.model_dump(mode="json") for o in await node.db.read(read)]}


async def get_one(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    opportunity_id = request.match_info["id"]
    opportunity = await node.db.read(lambda conn: get_opportunity(conn, opportunity_id))
    return {"opportunity": opportunity.model_dump(mode="json")}


async def close(request: web.Request, node: Node, caller: Caller, body: CloseIn) -> Any:
    opportunity_id = request.match_info["id"]
    opportunity = await node.transact(
        lambda conn, ctx: close_opportunity(conn, opportunity_id, body.reason, now=ctx.now))
    return {"opportunity": opportunity.model_dump(mode="json")}


async def convert(request: web.Request, node: Node, caller: Caller, body: referring.ReferDealIn) -> Any:
    opportunity_id = request.match_info["id"]
    result = await node.transact(
        lambda conn, ctx: convert_opportunity(conn, ctx, opportunity_id, body, caller.id))
    if "deferred" in result:
        return web.json_response(result, status=201)
    return result


ROUTES: list[Route] = [
    Route("POST", "/api/v1/opportunities", record,
          "Record why a deal was not referred (not_raised, client_declined, other) or a future opportunity"
          " with a follow-up date", OpportunityIn, status=201),
    Route("GET", "/api/v1/opportunities", follow_up_list,
          "The follow-up list: ?state=open|converted|closed|all (default open), due_by=YYYY-MM-DD,"
          " referral_type, deal_id", query=ListQuery),
    Route("GET", "/api/v1/opportunities/{id}", get_one, "One opportunity"),
    Route("POST", "/api/v1/opportunities/{id}/close", close, "Stop following up an open opportunity", CloseIn),
    Route("POST", "/api/v1/opportunities/{id}/convert", convert,
          "Turn an open opportunity into a referral (same body as /deals/{id}/refer; consent is required)",
          referring.ReferDealIn, status=202, also=(201,)),
]

