"""Referral opportunities (Street's "Saving the Referral as an Opportunity"): when a deal
is not referred, the user records why, or that it is a future opportunity with a
follow-up date; open opportunities make the follow-up list and can be turned into a
referral later.

Rules
- ``outcome`` is one of ``not_raised`` (not raised during the discussion),
  ``client_declined``, ``other`` (``reason`` required) or ``future`` (``follow_up_on``
  required, a ``YYYY-MM-DD`` date that is not before today; "today" is the node clock's
  UTC date). Only a future opportunity has a follow-up date; the others refuse one.
- ``deal_id`` must be a deal of this node (404 otherwise); ``contact_id``, if given, must
  be on that deal. ``referral_type`` is a token such as ``mortgage``.
- As in Street, ``not_raised``, ``other`` and ``future`` open an opportunity to follow
  up. ``client_declined`` is recorded for reporting but closed at once (closed_reason
  "client declined"): the client said no, so there is nobody to chase. If the client
  changes their mind, refer the deal directly.
- Every record writes a system note on the deal (and the contact, if given) saying why
  no referral was made; closing writes one too.
- States: ``open`` -> ``converted`` (a referral was made from it) or ``closed`` (given
  up, with a reason). Only an open opportunity can be closed or converted; anything
  else is 409 ``invalid_transition``.
- Converting takes the body of ``POST /api/v1/deals/{id}/refer`` and runs
  :func:`node.referring.refer_deal` in the same transaction as the state change:
  consent and every other rule of referring still apply, and if referring is refused
  the error passes through and the opportunity stays open (nothing is written, nothing
  is queued). Without ``referral_type`` the opportunity's own is used. A referral sent
  now is kept in ``referral_local_id``; a deferred one (``when_stage_id``) in
  ``deferred_referral_id`` (its own state says whether it was later sent or cancelled).
- The follow-up list (``GET /api/v1/opportunities``) shows open opportunities unless
  ``state`` says otherwise (``all`` for every state): dated ones first by
  ``follow_up_on``, then the undated ones, each oldest first. ``due_by`` keeps the dated
  ones due on or before that date.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field, StringConstraints

from node import referring
from node.admin_api import Caller, Route, query_params
from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.models import Blank, Id, IsoDate, LongText, Model, NoteIn, parse
from node.db import migration
from node.errors import ApiError
from node.ids import new_id
from node.outbox import TxContext
from node.runtime import Node
from protocol.models import Token, format_ts


@migration(20, "referral opportunities")
def _v20(db) -> None:  # type: ignore[no-untyped-def]
    db.executescript(
        """
        CREATE TABLE opportunities (
            id TEXT PRIMARY KEY,
            deal_id TEXT NOT NULL REFERENCES deals(id),
            contact_id TEXT REFERENCES contacts(id),
            referral_type TEXT NOT NULL,
            outcome TEXT NOT NULL
                CHECK (outcome IN ('not_raised', 'client_declined', 'other', 'future')),
            reason TEXT NOT NULL DEFAULT '',
            follow_up_on TEXT,                         -- YYYY-MM-DD
            state TEXT NOT NULL CHECK (state IN ('open', 'converted', 'closed')),
            referral_local_id TEXT REFERENCES referrals(local_id),
            deferred_referral_id TEXT REFERENCES deferred_referrals(id),
            created_by TEXT NOT NULL REFERENCES users(id),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            closed_reason TEXT,
            CHECK ((outcome = 'future') = (follow_up_on IS NOT NULL)),
            CHECK (outcome != 'other' OR reason != ''),
            CHECK ((state = 'converted')
                   = (referral_local_id IS NOT NULL OR deferred_referral_id IS NOT NULL)),
            CHECK ((state = 'closed') = (closed_reason IS NOT NULL))
        );
        CREATE INDEX opportunities_follow_up ON opportunities(state, follow_up_on, created_at);
        CREATE INDEX opportunities_deal ON opportunities(deal_id);
        """
    )


Outcome = Literal["not_raised", "client_declined", "other", "future"]
State = Literal["open", "converted", "closed"]

_NOTE_OPENING: dict[str, str] = {
    "not_raised": "a referral was not raised during the discussion",
    "client_declined": "the client declined a referral",
    "other": "no referral was made",
}
DECLINED_REASON = "client declined"


class Opportunity(Model):
    id: str
    deal_id: str
    contact_id: str | None
    referral_type: str
    outcome: Outcome
    reason: str
    follow_up_on: str | None
    state: State
    referral_local_id: str | None
    deferred_referral_id: str | None
    created_by: str
    created_at: str
    updated_at: str
    closed_reason: str | None


class OpportunityIn(Model):
    deal_id: Id
    contact_id: Annotated[Id | None, Blank] = Field(default=None, description="A contact on the deal.")
    referral_type: Token = Field(description="What kind of referral, e.g. 'mortgage'.")
    outcome: Outcome
    reason: LongText = Field(default="", description="Why no referral was made; required for 'other'.")
    follow_up_on: Annotated[IsoDate | None, Blank] = Field(
        default=None, description="YYYY-MM-DD, not in the past; required for 'future', refused otherwise.")


class CloseIn(Model):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=8000)] = Field(
        description="Why the opportunity will not be followed up.")


class ListQuery(Model):
    state: Literal["open", "converted", "closed", "all"] = "open"
    due_by: IsoDate | None = None
    referral_type: Token | None = None
    deal_id: Id | None = None


# --- store ------------------------------------------------------------------------------


def get_opportunity(conn: sqlite3.Connection, opportunity_id: str) -> Opportunity:
    row = conn.execute("SELECT * FROM opportunities WHERE id = ?", (opportunity_id,)).fetchone()
    if row is None:
        raise CrmError("not_found", f"opportunity {opportunity_id!r} not found")
    return Opportunity(**dict(row))


def list_opportunities(
    conn: sqlite3.Connection,
    *,
    state: State | None = "open",
    due_by: str | None = None,
    referral_type: str | None = None,
    deal_id: str | None = None,
) -> list[Opportunity]:
    """The follow-up list: dated opportunities by follow-up date, then undated ones, each
    oldest first. ``state=None`` lists every state; ``due_by`` keeps dated ones due by then."""
    where: list[str] = []
    params: list[Any] = []
    if state is not None:
        where.append("state = ?")
        params.append(state)
    if due_by is not None:
        where.append("follow_up_on <= ?")
        params.append(due_by)
    if referral_type is not None:
        where.append("referral_type = ?")
        params.append(referral_type)
    if deal_id is not None:
        crm.get_deal(conn, deal_id, field="deal_id")
        where.append("deal_id = ?")
        params.append(deal_id)
    sql = "SELECT * FROM opportunities"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY follow_up_on IS NULL, follow_up_on, created_at, id"
    return [Opportunity(**dict(r)) for r in conn.execute(sql, params)]


def record_opportunity(
    conn: sqlite3.Connection, data: OpportunityIn, *, actor_id: str, now: datetime
) -> Opportunity:
    """Record why a deal was not referred; see the module's rules."""
    deal = crm.get_deal(conn, data.deal_id, field="deal_id")
    if data.contact_id is not None and all(c.contact_id != data.contact_id for c in deal.contacts):
        raise CrmError("invalid", f"contact {data.contact_id!r} is not on deal {deal.id!r}", "contact_id")
    if data.outcome == "future":
        if data.follow_up_on is None:
            raise CrmError("invalid", "a future opportunity needs a follow-up date (YYYY-MM-DD)", "follow_up_on")
        today = now.astimezone(UTC).date()
        if date.fromisoformat(data.follow_up_on) < today:
            raise CrmError("invalid", f"the follow-up date {data.follow_up_on} is in the past"
                                      f" (today is {today.isoformat()})", "follow_up_on")
    elif data.follow_up_on is not None:
        raise CrmError("invalid", "only a future opportunity has a follow-up date", "follow_up_on")
    if data.outcome == "other" and not data.reason:
        raise CrmError("invalid", "say why no referral was made (reason is required for 'other')", "reason")
    declined = data.outcome == "client_declined"
    opportunity_id = new_id("opp", now)
    ts = format_ts(now)
    conn.execute(
        "INSERT INTO opportunities (id, deal_id, contact_id, referral_type, outcome, reason, follow_up_on,"
        " state, created_by, created_at, updated_at, closed_reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (opportunity_id, deal.id, data.contact_id, data.referral_type, data.outcome, data.reason,
         data.follow_up_on, "closed" if declined else "open", actor_id, ts, ts,
         DECLINED_REASON if declined else None),
    )
    if data.outcome == "future":
        body = f"Future {data.referral_type} referral opportunity: follow up on {data.follow_up_on}."
    else:
        body = f"No {data.referral_type} referral: {_NOTE_OPENING[data.outcome]}."
    if data.reason:
        body += f"\nReason: {data.reason}"
    crm.add_note(conn, NoteIn(deal_id=deal.id, contact_id=data.contact_id, body=body), now=now, kind="system")
    return get_opportunity(conn, opportunity_id)


def _open(conn: sqlite3.Connection, opportunity_id: str, doing: str) -> Opportunity:
    current = get_opportunity(conn, opportunity_id)
    if current.state != "open":
        raise ApiError(409, "invalid_transition",
                       f"opportunity {opportunity_id} is already {current.state} and cannot be {doing}", field="id")
    return current


def close_opportunity(conn: sqlite3.Connection, opportunity_id: str, reason: str, *, now: datetime) -> Opportunity:
    """Stop following up an open opportunity."""
    current = _open(conn, opportunity_id, "closed")
    conn.execute("UPDATE opportunities SET state = 'closed', closed_reason = ?, updated_at = ? WHERE id = ?",
                 (reason, format_ts(now), opportunity_id))
    crm.add_note(conn, NoteIn(deal_id=current.deal_id, contact_id=current.contact_id,
                              body=f"{current.referral_type.capitalize()} referral opportunity closed: {reason}"),
                 now=now, kind="system")
    return get_opportunity(conn, opportunity_id)


def convert_opportunity(conn: sqlite3.Connection, ctx: TxContext, opportunity_id: str,
                        body: referring.ReferDealIn, actor_id: str) -> dict[str, Any]:
    """Refer the opportunity's deal (now or deferred) and mark it converted, all in the
    caller's transaction: if referring is refused, its error passes through and nothing
    is written."""
    current = _open(conn, opportunity_id, "converted")
    if body.referral_type is None:
        body = body.model_copy(update={"referral_type": current.referral_type})
    result = referring.refer_deal(conn, ctx, current.deal_id, body, crm.get_user(conn, actor_id))
    if "referral" in result:
        link = ("referral_local_id", result["referral"]["local_id"])
    else:
        link = ("deferred_referral_id", result["deferred"]["id"])
    conn.execute(f"UPDATE opportunities SET state = 'converted', {link[0]} = ?, updated_at = ? WHERE id = ?",
                 (link[1], ctx.ts, opportunity_id))
    return {"opportunity": get_opportunity(conn, opportunity_id).model_dump(mode="json"), **result}


# --- routes -----------------------------------------------------------------------------


async def record(request: web.Request, node: Node, caller: Caller, body: OpportunityIn) -> Any:
    opportunity = await node.transact(
        lambda conn, ctx: record_opportunity(conn, body, actor_id=caller.id, now=ctx.now))
    return {"opportunity": opportunity.model_dump(mode="json")}


async def follow_up_list(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    query = parse(ListQuery, query_params(request, *ListQuery.model_fields))
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
          " referral_type, deal_id"),
    Route("GET", "/api/v1/opportunities/{id}", get_one, "One opportunity"),
    Route("POST", "/api/v1/opportunities/{id}/close", close, "Stop following up an open opportunity", CloseIn),
    Route("POST", "/api/v1/opportunities/{id}/convert", convert,
          "Turn an open opportunity into a referral (same body as /deals/{id}/refer; consent is required)",
          referring.ReferDealIn, status=202),
]

