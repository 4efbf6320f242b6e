"""A broker's side of the partner portal, on the console's deal page (issue 13): give a
partner access to the deal (the "deal shared" e-mail, if the portal sends it), take it
away, and share a note with the deal's partners or stop sharing it (a note is private
unless shared: partners see shared notes and their own, nothing else)."""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from node.crm import partners
from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.models import Deal
from node.mail import partner_mail
from node.web.views import Pages, View

pages = Pages()


def partner_context(conn: sqlite3.Connection, deal_id: str) -> dict[str, Any]:
    """What the deal page shows of partners: who sees the deal, who could, which notes
    are shared."""
    on_deal = partners.deal_partners(conn, deal_id)
    seeing = {p[0] for p in on_deal}
    return {"deal_partners": on_deal, "shared_notes": partners.shared_note_ids(conn, deal_id),
            "other_partners": [(p.id, p.name) for p in partners.list_partners(conn) if p.id not in seeing],
            "consent": partners.consent_of(conn, deal_id)}


def share_note(conn: sqlite3.Connection, ctx: Any, deal: Deal, note_id: str, by_name: str, by_id: str) -> None:
    """Share a note with the deal's partners, and tell those who want to know."""
    if not partners.share_note(conn, note_id, deal.id, shared=True, by=by_id, now=ctx.now):
        if partner_mail.note_shared(conn, ctx.config, deal, by_name, ctx.now):
            ctx.effects.mail = True


def _deal(conn: sqlite3.Connection, deal_id: str) -> Deal:
    try:
        return crm.get_deal(conn, deal_id)
    except CrmError:
        raise CrmError("not_found", "There is no such deal here: the link may be wrong.") from None


@pages.post("/deals/{id}/partners")
async def add_partner(view: View) -> web.StreamResponse:
    deal_id, partner_id = view.request.match_info["id"], view.value("partner_id")
    if not partner_id:
        raise CrmError("invalid", "Choose the partner to give access to this deal.", "partner_id")
    me = view.user

    def add(conn: sqlite3.Connection, ctx: Any) -> tuple[str, bool]:
        deal = _deal(conn, deal_id)
        partner = partners.get_partner(conn, partner_id)
        new = partners.share_deal(conn, deal_id, partner_id, by=me.id, how="shared", now=ctx.now)
        mailed = new and partner_mail.deal_shared(conn, ctx.config, partner_id, deal, me.name, ctx.now)
        ctx.effects.mail = mailed
        return partner.name, mailed

    name, mailed = await view.node.transact(add)
    return view.redirect(f"/deals/{deal_id}#partners", f"{name} can see this deal in the partner portal"
                         + (", and we e-mailed them." if mailed else "."))


@pages.post("/deals/{id}/partners/{partner_id}/remove")
async def remove_partner(view: View) -> web.StreamResponse:
    deal_id, partner_id = view.request.match_info["id"], view.request.match_info["partner_id"]

    def remove(conn: sqlite3.Connection, ctx: Any) -> str:
        _deal(conn, deal_id)
        name = partners.get_partner(conn, partner_id).name
        partners.unshare_deal(conn, deal_id, partner_id)
        return name

    name = await view.node.transact(remove)
    return view.redirect(f"/deals/{deal_id}#partners", f"{name} no longer sees this deal.")


@pages.post("/deals/{id}/notes/{note_id}/share")
async def share(view: View) -> web.StreamResponse:
    deal_id, note_id = view.request.match_info["id"], view.request.match_info["note_id"]
    shared = view.value("shared") == "yes"
    me = view.user

    def change(conn: sqlite3.Connection, ctx: Any) -> None:
        deal = _deal(conn, deal_id)
        if shared:
            share_note(conn, ctx, deal, note_id, me.name, me.id)
        else:
            partners.share_note(conn, note_id, deal_id, shared=False, by=me.id, now=ctx.now)

    await view.node.transact(change)
    return view.redirect(f"/deals/{deal_id}#notes", "The note is shared with the deal's partners." if shared
                         else "The note is no longer shared with partners.")
