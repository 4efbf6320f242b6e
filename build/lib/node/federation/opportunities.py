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
  :func:`node.federation.referring.refer_deal` in the same transaction as the state change:
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

from pydantic import Field, StringConstraints

from node.base.errors import ApiError
from node.base.ids import new_id
from node.base.inputs import PlainText
from node.base.when import day
from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.fields import Blank, Id, IsoDate, LongText
from node.crm.models import Model, NoteIn, note_text
from node.federation import referring
from node.federation.outbox import TxContext
from protocol.models import Token, format_ts

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
    reason: Annotated[str, StringConstraints(min_length=1, max_length=8000),
                      PlainText(multiline=True, max_length=8000)] = Field(
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


def follow_up_rows(conn: sqlite3.Connection, state: State | None = "open", limit: int = 500) -> list[dict[str, Any]]:
    """The follow-up list as people read it, in :func:`list_opportunities`' order: each
    opportunity with its deal's title, its client's name, who recorded it, and for one
    converted into a deferred referral, that referral's state (and what it was sent as)."""
    rows = conn.execute(
        """SELECT o.*, d.title AS deal, u.name AS recorded_by, c.first_name, c.last_name, c.email AS contact_email,
                  f.state AS deferred_state, f.referral_local_id AS deferred_sent_as
           FROM opportunities o JOIN deals d ON d.id = o.deal_id LEFT JOIN users u ON u.id = o.created_by
           LEFT JOIN contacts c ON c.id = o.contact_id LEFT JOIN deferred_referrals f ON f.id = o.deferred_referral_id
           WHERE (:state IS NULL OR o.state = :state)
           ORDER BY o.follow_up_on IS NULL, o.follow_up_on, o.created_at, o.id LIMIT :limit""",
        {"state": state, "limit": limit},
    ).fetchall()
    out = []
    for row in rows:
        item = dict(row)
        name = " ".join(p for p in (item.pop("first_name"), item.pop("last_name")) if p)
        item["client"] = name or item.pop("contact_email") or ""
        item.pop("contact_email", None)
        out.append(item)
    return out


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
            raise CrmError("invalid", f"the follow-up date {day(date.fromisoformat(data.follow_up_on))} is"
                                      f" in the past (today is {day(today)})", "follow_up_on")
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
    crm.add_note(conn, NoteIn(deal_id=deal.id, contact_id=data.contact_id, body=note_text(body)), now=now,
                 kind="system")
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
                              body=note_text(f"{current.referral_type.capitalize()} referral opportunity closed:"
                                             f" {reason}")),
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
