"""Referral opportunities (Street's "Saving the Referral as an Opportunity"): the
follow-up list (overdue, due today, upcoming, undated), turning one into a referral (the
refer form, filled in from it), closing one with a reason, and recording one from a deal.
The rules are :mod:`node.federation.opportunities`', the API's."""

from __future__ import annotations

import sqlite3
from datetime import date
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from node.base import when as moments
from node.crm import store as crm
from node.crm.errors import CrmError
from node.federation.opportunities import (
    CloseIn,
    OpportunityIn,
    close_opportunity,
    follow_up_rows,
    get_opportunity,
    record_opportunity,
)
from node.web.views import FormError, Pages, View

pages = Pages()

STATES = ("open", "converted", "closed", "all")
OUTCOMES = (
    ("future", "A future opportunity: follow it up on a date"),
    ("not_raised", "A referral was not raised during the discussion"),
    ("client_declined", "The client declined a referral"),
    ("other", "Another reason"),
)
OUTCOME_SHORT = {"future": "future opportunity", "not_raised": "not raised", "client_declined": "client declined",
                 "other": "other reason"}


def day(value: str) -> str:
    """A ``YYYY-MM-DD`` date as people read it (a date has no time zone to convert)."""
    return moments.day(date.fromisoformat(value))


def _today(view: View) -> date:
    return view.node.clock.now().astimezone(view.config.zone).date()


@pages.get("/opportunities", "opportunities.html")
async def follow_ups(view: View) -> dict[str, Any]:
    state = view.request.query.get("state", "open")
    if state not in STATES:
        raise FormError(f"state must be one of {', '.join(STATES)}")
    rows = await view.node.db.read(lambda conn: follow_up_rows(conn, None if state == "all" else state))  # type: ignore[arg-type]
    today = _today(view).isoformat()
    groups: list[tuple[str, str, list[dict[str, Any]]]] = []
    if state == "open":
        for key, title, keep in (
            ("overdue", "Overdue", lambda d: d is not None and d < today),
            ("today", "Due today", lambda d: d == today),
            ("upcoming", "Upcoming", lambda d: d is not None and d > today),
            ("undated", "No follow-up date", lambda d: d is None),
        ):
            groups.append((key, title, [r for r in rows if keep(r["follow_up_on"])]))
    else:
        groups.append((state, state.capitalize(), rows))
    return {"state": state, "states": STATES, "groups": groups, "outcomes": OUTCOME_SHORT, "today": today,
            "day": day}


async def _one(view: View, opportunity_id: str) -> dict[str, Any]:
    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        opportunity = get_opportunity(conn, opportunity_id)
        return {"opportunity": opportunity, "deal": crm.get_deal(conn, opportunity.deal_id), "day": day}

    return await view.node.db.read(read)


@pages.get("/opportunities/{id}/close", "opportunity_close.html")
async def close_form(view: View) -> dict[str, Any]:
    return {**await _one(view, view.request.match_info["id"]), "errors": {}, "reason": ""}


@pages.post("/opportunities/{id}/close", multiline=("reason",))
async def close(view: View) -> web.StreamResponse:
    opportunity_id, reason = view.request.match_info["id"], view.form.get("reason", "").strip()
    try:
        body = CloseIn(reason=reason)
    except ValidationError:
        message = "Say why you stop following it up." if not reason else "Keep the reason under 8000 characters."
        return view.render("opportunity_close.html", {**await _one(view, opportunity_id), "reason": reason,
                                                      "errors": {"reason": message}}, status=400)
    done = await view.node.transact(lambda conn, ctx: close_opportunity(conn, opportunity_id, body.reason,
                                                                        now=ctx.now))
    return view.redirect("/opportunities", f"The {done.referral_type} opportunity is closed.")


async def _new_context(view: View, deal_id: str, values: dict[str, str], errors: dict[str, str]) -> dict[str, Any]:
    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        deal = crm.get_deal(conn, deal_id)
        clients = [(link.contact_id, crm.get_contact(conn, link.contact_id).display_name) for link in deal.contacts]
        return {"deal": deal, "clients": clients}

    return {**await view.node.db.read(read), "values": values, "errors": errors, "outcomes": OUTCOMES}


@pages.get("/deals/{id}/opportunity", "opportunity_new.html")
async def new_form(view: View) -> dict[str, Any]:
    deal_id = view.request.match_info["id"]
    return await _new_context(view, deal_id, {"outcome": "", "referral_type": "", "contact_id": "", "reason": "",
                                              "follow_up_on": ""}, {})


@pages.post("/deals/{id}/opportunity", multiline=("reason",))
async def record(view: View) -> web.StreamResponse:
    deal_id = view.request.match_info["id"]
    values = {k: view.value(k) for k in ("outcome", "referral_type", "contact_id", "follow_up_on")}
    values["reason"] = view.form.get("reason", "").strip()
    errors: dict[str, str] = {}
    if values["outcome"] not in dict(OUTCOMES):
        errors["outcome"] = "Choose what happened."
    if not values["referral_type"]:
        errors["referral_type"] = "Enter the type of referral, for example mortgage."
    data = None
    if not errors:
        try:
            data = OpportunityIn(deal_id=deal_id, contact_id=values["contact_id"] or None,
                                 referral_type=values["referral_type"], outcome=values["outcome"],  # type: ignore[arg-type]
                                 reason=values["reason"], follow_up_on=values["follow_up_on"] or None)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else "outcome"
            errors[name if name in values else "outcome"] = f"This is not valid: {first['msg']}."
    if data is not None:
        actor_id = view.user.id
        try:
            await view.node.transact(lambda conn, ctx: record_opportunity(conn, data, actor_id=actor_id, now=ctx.now))
        except CrmError as exc:
            if exc.code == "not_found" and exc.field == "deal_id":
                raise
            errors[exc.field if exc.field in values else "outcome"] = exc.message[:1].upper() + exc.message[1:] + "."
    if errors:
        return view.render("opportunity_new.html", await _new_context(view, deal_id, values, errors), status=400)
    return view.redirect("/opportunities" if values["outcome"] != "client_declined" else f"/deals/{deal_id}",
                         "Recorded." + (" It is on the follow-up list." if values["outcome"] != "client_declined"
                                        else " The client said no, so there is nothing to follow up."))
