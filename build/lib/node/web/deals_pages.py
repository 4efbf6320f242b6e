"""The deal board and the deal page.

- ``/deals``: a board per workflow (chosen by name), a column per stage, deals as cards.
  A column shows its first :data:`PER_STAGE` cards and links to the rest of the stage,
  a page of :data:`PER_PAGE` at a time (``node.crm.store.board`` keeps that fast at any
  size). Each card moves by a small form (a stage select and a Move button), which works
  by keyboard and without JavaScript;
- ``/deals/{id}``: facts, contacts, notes, documents, referrals and a timeline;
- a move goes through ``node.http.deals_api.move``, the API's own path, so the node's
  deal-moved hooks (deferred referrals, status updates to a referrer) run as they would;
- notes and contacts of a deal are added here; documents in ``documents_pages``.

Brokers and admins alike: the API's routes for deals, contacts and notes are for both.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from typing import Any

from aiohttp import web

from node.base.money import money
from node.crm import store as crm
from node.crm.document_files import ACCEPT, ALLOWED_NAMES, megabytes
from node.crm.errors import CrmError
from node.crm.models import Contact, Deal, DealContact, NoteIn, Workflow
from node.crm.parsing import parse
from node.crm.store import board as boards
from node.federation.deal_view import deal_page
from node.http.deals_api import DealMove, move
from node.http.notes_api import DealNoteIn
from node.web.deal_partners import partner_context, share_note
from node.web.views import Pages, View

pages = Pages()

#: Cards a column of the board shows; the rest are a link away.
PER_STAGE = 20
#: Cards a page of one stage shows.
PER_PAGE = 50
#: A column of the board counts its deals up to this ("1,000+" past it); a stage's own
#: page, up to :data:`STAGE_COUNT_CAP`.
COUNT_CAP = 1000
STAGE_COUNT_CAP = 10_000
#: Contacts offered when adding one to a deal.
FIND_LIMIT = 10
ROLES = [("primary", "Primary"), ("co-applicant", "Co-applicant"), ("other", "Other")]


def deal_of(conn: sqlite3.Connection, deal_id: str) -> Deal:
    """The deal a URL names, or a ``not_found`` that says so in words (not the id)."""
    try:
        return crm.get_deal(conn, deal_id)
    except CrmError:
        raise CrmError("not_found", "There is no such deal here: the link may be wrong, or the deal may be "
                                    "another organisation's.") from None


def contact_of(conn: sqlite3.Connection, contact_id: str) -> Contact:
    """The contact a URL names, or a ``not_found`` that says so in words."""
    try:
        return crm.get_contact(conn, contact_id)
    except CrmError:
        raise CrmError("not_found", "There is no such contact here: the link may be wrong, or the contact may "
                                    "be another organisation's.") from None


def board_url(workflow: str, stage: str | None = None, after: str | None = None) -> str:
    query = {"workflow": workflow, **({"stage": stage} if stage else {}), **({"after": after} if after else {})}
    return "/deals?" + urllib.parse.urlencode(query)


def _chosen(workflows: list[Workflow], name: str) -> Workflow | None:
    if not workflows:
        return None
    if not name:
        return workflows[0]
    found = next((w for w in workflows if w.name.casefold() == name.casefold()), None)
    if found is None:
        raise CrmError("not_found", f"There is no workflow named “{name[:200]}”.")
    return found


@pages.get("/deals", "deals_board.html")
async def board(view: View) -> dict[str, Any]:
    query = view.request.query
    after = query.get("after") or None

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        workflows = crm.list_workflows(conn)
        workflow = _chosen(workflows, query.get("workflow", ""))
        if workflow is None:
            return {"workflows": [], "workflow": None, "columns": [], "only": None}
        only = None
        if query.get("stage"):
            only = workflow.stage_named(query["stage"])
            if only is None:
                raise CrmError("not_found", f"The workflow {workflow.name} has no stage named “{query['stage'][:200]}”.")
        columns = boards.board(conn, workflow, per_stage=PER_PAGE if only else PER_STAGE,
                               count_cap=STAGE_COUNT_CAP if only else COUNT_CAP, only=only, after=after)
        return {"workflows": workflows, "workflow": workflow, "columns": columns, "only": only}

    data = await view.node.db.read(read)
    return {**data, "after": after, "money": money, "board_url": board_url, "back": view.request.path_qs,
            "per_page": PER_PAGE, "count_cap": STAGE_COUNT_CAP if data["only"] else COUNT_CAP}


def _back(view: View, deal_id: str) -> str:
    back = view.value("back")
    return back if back.startswith("/deals") and not back.startswith("//") else f"/deals/{deal_id}"


@pages.post("/deals/{id}/move")
async def move_deal(view: View) -> web.StreamResponse:
    deal_id = view.request.match_info["id"]
    stage_id = view.value("stage_id")
    if not stage_id:
        raise CrmError("invalid", "Choose the stage to move the deal to.", "stage_id")
    body = parse(DealMove, {"stage_id": stage_id})
    before = await view.node.db.read(lambda conn: deal_of(conn, deal_id))
    after = await move(view.node, deal_id, body)
    if after.stage_id == before.stage_id:
        return view.redirect(_back(view, deal_id), f"“{after.title}” is already in that stage.")
    stage = await view.node.db.read(lambda conn: crm.get_stage(conn, after.stage_id))
    return view.redirect(_back(view, deal_id), f"Moved “{after.title}” to {stage.name}.")


async def deal_context(view: View, deal_id: str, *, errors: dict[str, str] | None = None,
                        note: str = "") -> dict[str, Any]:
    find = view.request.query.get("find", "").strip()[:200]

    def read(conn: sqlite3.Connection) -> tuple[Any, list[Any], dict[str, Any]]:
        deal_of(conn, deal_id)
        page = deal_page(conn, deal_id)
        found = boards.search_contacts(conn, find, limit=FIND_LIMIT) if find else []
        on_deal = {c.contact_id for c in page.deal.contacts}
        return page, [c for c in found if c.id not in on_deal], partner_context(conn, deal_id)

    page, found, partner_parts = await view.node.db.read(read)
    return {**partner_parts, "page": page, "deal": page.deal, "money": money, "find": find, "found": found, "roles": ROLES,
            "errors": errors or {}, "note": note, "accept": ACCEPT, "allowed": ALLOWED_NAMES,
            "max_upload": megabytes(view.config.max_upload_bytes),
            "board_link": board_url(page.workflow.name)}


@pages.get("/deals/{id}", "deal.html")
async def deal(view: View) -> dict[str, Any]:
    return await deal_context(view, view.request.match_info["id"])


@pages.post("/deals/{id}/notes", multiline=("body",))
async def add_note(view: View) -> web.StreamResponse:
    deal_id = view.request.match_info["id"]
    text = view.form.get("body", "").strip()
    if not text:
        context = await deal_context(view, deal_id, errors={"body": "Enter the note"})
        return view.render("deal.html", context, status=400)
    if len(text) > 8000:
        context = await deal_context(view, deal_id, note=text,
                                      errors={"body": "The note must be 8,000 characters or fewer"})
        return view.render("deal.html", context, status=400)
    body = parse(DealNoteIn, {"body": text})
    share = view.value("share") == "yes"

    def add(conn: sqlite3.Connection, ctx: Any) -> None:
        deal = deal_of(conn, deal_id)
        note = crm.add_note(conn, parse(NoteIn, {"deal_id": deal_id, "body": body.body}), now=ctx.now,
                            author_user_id=view.user.id)
        if share:
            share_note(conn, ctx, deal, note.id, view.user.name, view.user.id)

    await view.node.transact(add)
    return view.redirect(f"/deals/{deal_id}#notes", "Your note is added" + (", shared with the deal's partners."
                                                                             if share else "."))


@pages.post("/deals/{id}/contacts")
async def attach_contact(view: View) -> web.StreamResponse:
    deal_id = view.request.match_info["id"]
    link = parse(DealContact, {"contact_id": view.value("contact_id"), "role": view.value("role") or "primary"})

    def attach(conn: sqlite3.Connection, ctx: Any) -> str:
        deal_of(conn, deal_id)
        crm.attach_contact(conn, deal_id, link.contact_id, role=link.role, now=ctx.now)
        return crm.get_contact(conn, link.contact_id).display_name

    name = await view.node.transact(attach)
    return view.redirect(f"/deals/{deal_id}#contacts", f"{name} is on this deal.")


@pages.post("/deals/{id}/contacts/{contact_id}/remove")
async def detach_contact(view: View) -> web.StreamResponse:
    deal_id, contact_id = view.request.match_info["id"], view.request.match_info["contact_id"]

    def detach(conn: sqlite3.Connection, ctx: Any) -> str:
        deal_of(conn, deal_id)
        crm.detach_contact(conn, deal_id, contact_id, now=ctx.now)
        return crm.get_contact(conn, contact_id).display_name

    name = await view.node.transact(detach)
    return view.redirect(f"/deals/{deal_id}#contacts", f"{name} is no longer on this deal.")
