"""Referrals, sent and received, and one referral's page.

A received referral's page is the receiving broker's worklist (Street's partner
platform): accept, or decline with a reason; move the deal it was filed as through its
stages; mark it won or lost. Each step goes through the code the API uses
(``referrals.report_status``, and a deal move with the node's ``on_deal_moved`` hooks),
so the status update is queued to the referrer in the same transaction and the outbox
sends it. A sent referral's page shows the timeline those updates make, and the delivery
receipt verified again as the page is served (``evidence.referral_receipt``).

Every role may use these pages, as every role may use the API's referral routes.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from node.crm import events
from node.crm import store as crm
from node.federation import evidence, referral_views, referrals, referring
from node.federation.outbox import TxContext
from node.storage.records import Referral
from node.web.views import FormError, Pages, View

pages = Pages()

#: What each worklist button sends back, and what the person is told.
DONE = {"accepted": "Accepted. {org} is told.", "declined": "Declined. {org} is told, with your reason.",
        "won": "Marked won. {org} is told.", "lost": "Marked lost. {org} is told."}
MAX_REASON = 8000


@pages.get("/referrals", "referrals.html")
async def referral_list(view: View) -> dict[str, Any]:
    query = view.request.query
    side = query.get("side", "received")
    status = query.get("status", "")
    if side not in referral_views.SIDES:
        raise FormError("side must be sent or received")
    if status and status not in referral_views.STATUSES[side]:
        raise FormError(f"status must be one of {', '.join(referral_views.STATUSES[side])}")
    try:
        offset = int(query.get("offset", "0"))
    except ValueError:
        raise FormError("offset must be a whole number") from None
    if not 0 <= offset <= 10**7:
        raise FormError("offset is out of range")

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        rows = referral_views.list_referrals(conn, side, status=status or None, offset=offset)
        waiting = referral_views.waiting_to_send(conn) if side == "sent" and not status and not offset else []
        return {"rows": rows, "waiting": waiting}

    found = await view.node.db.read(read)
    return {**found, "side": side, "status": status, "statuses": referral_views.STATUSES[side], "offset": offset,
            "page_size": referral_views.PAGE_SIZE}


async def _page(view: View, local_id: str) -> dict[str, Any]:
    me = view.node.me

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        page = referral_views.referral_page(conn, local_id)
        proof = evidence.referral_receipt(conn, me, local_id) if page.side == "sent" else None
        return {"page": page, "proof": proof}

    return await view.node.db.read(read)


@pages.get("/referrals/{id}", "referral.html")
async def referral_detail(view: View) -> dict[str, Any]:
    return {**await _page(view, view.request.match_info["id"]), "errors": {}, "reason": ""}


def _received(conn: sqlite3.Connection, local_id: str) -> Referral:
    page = referral_views.referral_page(conn, local_id)
    if page.side != "received":
        raise FormError("only a referral you received can be worked on here")
    return page.referral


@pages.post("/referrals/{id}/status", multiline=("reason",))
async def referral_status(view: View) -> web.StreamResponse:
    local_id = view.request.match_info["id"]
    status, reason = view.value("status"), view.form.get("reason", "").strip()
    if status not in DONE:
        raise FormError("status must be accepted, declined, won or lost")
    errors = {}
    if status == "declined" and not reason:
        errors["reason"] = "Say why you decline: the referring organisation reads it."
    elif len(reason) > MAX_REASON:
        errors["reason"] = f"Keep the reason under {MAX_REASON} characters."
    if errors:
        return view.render("referral.html", {**await _page(view, local_id), "errors": errors, "reason": reason},
                           status=400)

    def report(conn: sqlite3.Connection, ctx: TxContext) -> str:
        referral = _received(conn, local_id)
        page = referral_views.referral_page(conn, local_id)
        referrals.report_status(conn, ctx, referral.local_id, status, stage=page.stage, reason=reason or None)
        return page.connection

    org = await view.node.transact(report)
    return view.redirect(f"/referrals/{local_id}", DONE[status].format(org=org))


@pages.post("/referrals/{id}/move")
async def referral_move(view: View) -> web.StreamResponse:
    """Move the deal a referral was filed as; the hooks report the stage to the referrer
    (accepting it first if nobody had), exactly as ``POST /api/v1/deals/{id}/move`` does."""
    local_id, stage_id = view.request.match_info["id"], view.value("stage")
    hooks = view.node.on_deal_moved

    def move(conn: sqlite3.Connection, ctx: TxContext) -> str:
        referral = _received(conn, local_id)
        if referral.deal_id is None:
            raise FormError("this referral has no deal here to move")
        if referral.state not in ("accepted", "in-progress"):
            raise FormError(f"this referral is {referral.state.replace('-', ' ')}: accept it before moving it")
        before = crm.get_deal(conn, referral.deal_id)
        stage = crm.get_stage(conn, stage_id, field="stage")
        after = crm.move_deal(conn, before.id, stage.id, now=ctx.now)
        events.fire_deal_moved(conn, ctx, before, after, hooks)
        return stage.name

    name = await view.node.transact(move)
    return view.redirect(f"/referrals/{local_id}", f"Moved to stage {name}. The referring organisation is told.")


@pages.post("/deferred/{id}/cancel")
async def cancel_deferred(view: View) -> web.StreamResponse:
    deferred_id = view.request.match_info["id"]
    await view.node.transact(lambda conn, ctx: referring.cancel_deferred(conn, ctx, deferred_id))
    return view.redirect("/referrals?side=sent", "The waiting referral is cancelled. Nothing was sent.")
