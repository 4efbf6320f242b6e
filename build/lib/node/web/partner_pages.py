"""The partner portal (issue 13): a partner's deals, under ``/partner/``, with its own look.

- ``/partner/``: the partner's deals in one workflow at a time (the default workflow
  first; a switch to each other workflow that holds a deal of theirs), each with its
  stage bar, and "Add new";
- ``/partner/deals/new``: a new deal in the default workflow, with at least one client
  (first and last name, e-mail and phone, all required), one of the partner's brokers
  as its owner, and the client's consent (``node.crm.partner_deals``);
- ``/partner/deals/{id}``: how far the deal has got, the notes shared with the partner
  and their own, their files; add a note, upload a file.

Every page is ``portal="partner"``: only partners reach it, and a deal that is not
theirs is 404, as one that does not exist (``node.crm.access.partner_deal``).
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from typing import Any

from aiohttp import web

from node.crm import partner_deals, partners, portal
from node.crm import store as crm
from node.crm.access import partner_deal
from node.crm.document_files import ACCEPT, ALLOWED_NAMES, megabytes
from node.crm.errors import CrmError
from node.crm.models import DocumentIn, NoteIn
from node.crm.parsing import parse
from node.web.documents_pages import FRAMING_BYTES, _forget, _receive, attachment
from node.web.partner_forms import field_problems
from node.web.views import Pages, View

pages = Pages()
#: The most clients a new deal takes from the portal.
MAX_CLIENTS = 5
CLIENT_FIELDS = (("first_name", "name", "First name"), ("last_name", "name", "Last name"),
                 ("email", "email", "E-mail address"), ("phone", "phone", "Phone number"))


async def me(view: View) -> partners.Partner:
    return await view.node.db.read(lambda conn: partners.get_partner(conn, view.user.id))


@pages.get("/partner/", "partner_deals.html", portal="partner")
async def deals(view: View) -> dict[str, Any]:
    wanted = view.request.query.get("workflow", "")

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        settings = portal.settings(conn)
        mine = partners.portal_deals(conn, view.user.id)
        ids = [settings.default_workflow_id] if settings.default_workflow_id else []
        ids += [d.workflow_id for d in mine if d.workflow_id not in ids]
        workflows = [crm.get_workflow(conn, i) for i in ids]
        chosen = next((w for w in workflows if w.name.casefold() == wanted.casefold()), None) if wanted else (
            workflows[0] if workflows else None)
        if wanted and chosen is None:
            raise CrmError("not_found", "You have no deals in a workflow of that name.")
        return {"workflows": workflows, "workflow": chosen, "default_id": settings.default_workflow_id,
                "deals": [d for d in mine if chosen and d.workflow_id == chosen.id],
                "me": partners.get_partner(conn, view.user.id)}

    data = await view.node.db.read(read)
    return {**data, "quote": urllib.parse.quote}


def _blank_clients(count: int) -> list[dict[str, str]]:
    return [{name: "" for name, _, _ in CLIENT_FIELDS} for _ in range(count)]


async def _new_page(view: View, form: dict[str, Any], errors: dict[str, str], status: int = 200) -> web.Response:
    def read(conn: sqlite3.Connection) -> tuple[Any, Any, Any]:
        settings = portal.settings(conn)
        workflow = crm.get_workflow(conn, settings.default_workflow_id) if settings.default_workflow_id else None
        return partners.get_partner(conn, view.user.id), settings, workflow

    mine, settings, workflow = await view.node.db.read(read)
    return view.render("partner_deal_new.html", {"me": mine, "form": form, "errors": errors, "settings": settings,
                                                 "workflow": workflow, "fields": CLIENT_FIELDS,
                                                 "max_clients": MAX_CLIENTS}, status=status)


@pages.get("/partner/deals/new", portal="partner")
async def new_deal_form(view: View) -> web.StreamResponse:
    mine = await me(view)
    owner = mine.brokers[0][0] if len(mine.brokers) == 1 else ""
    return await _new_page(view, {"title": "", "owner_id": owner, "message": "", "consent": False,
                                  "clients": _blank_clients(1)}, {})


def _read_new(view: View) -> dict[str, Any]:
    count = min(max(len(view.values("c_first_name")), 1), MAX_CLIENTS)
    clients = []
    for i in range(count):
        clients.append({name: (view.values(f"c_{name}")[i:i + 1] or [""])[0] for name, _, _ in CLIENT_FIELDS})
    return {"title": view.value("title"), "owner_id": view.value("owner_id"), "message": view.form.get("message", "").strip(),
            "consent": view.value("consent") == "yes", "clients": clients}


@pages.post("/partner/deals", portal="partner", multiline=("message",))
async def create(view: View) -> web.StreamResponse:
    form = _read_new(view)
    if view.value("action") == "add_client" and len(form["clients"]) < MAX_CLIENTS:
        form["clients"].append(_blank_clients(1)[0])
        return await _new_page(view, form, {})
    errors: dict[str, str] = {}
    for i, client in enumerate(form["clients"]):
        found = field_problems({f"c{i}-{name}": (kind, label, client[name]) for name, kind, label in CLIENT_FIELDS})
        errors.update({k: (f"Client {i + 1}: " if len(form["clients"]) > 1 else "") + v for k, v in found.items()})
    if form["title"] and field_problems({"title": ("name", "Deal name", form["title"])}):
        errors["title"] = "The deal name must be one line of text, up to 200 characters"
    if not form["owner_id"]:
        errors["owner_id"] = "Choose the broker who looks after this deal"
    if len(form["message"]) > 8000:
        errors["message"] = "The note must be 8,000 characters or fewer"
    if not form["consent"]:
        errors["consent"] = "Confirm that the client agreed to be contacted"
    if errors:
        return await _new_page(view, form, errors, 400)
    caller = view.user

    def add(conn: sqlite3.Connection, ctx: Any) -> Any:
        return partner_deals.create_deal(
            conn, caller, title=form["title"], owner_id=form["owner_id"], message=form["message"],
            consented=form["consent"], now=ctx.now,
            clients=[partner_deals.NewClient(**c) for c in form["clients"]])

    try:
        deal = await view.node.transact(add)
    except CrmError as exc:
        field = exc.field if exc.field in ("owner_id", "consent", "title") else "title"
        return await _new_page(view, form, {field: exc.message}, 400)
    return view.redirect(f"/partner/deals/{deal.id}", f"“{deal.title}” is created. Your broker sees it now.")


async def _deal_page(view: View, deal_id: str, errors: dict[str, str] | None = None, note: str = "",
                     status: int = 200) -> web.Response:
    caller = view.user

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        partner_deal(conn, caller, deal_id)
        deal = crm.get_deal(conn, deal_id)
        workflow = crm.get_workflow(conn, deal.workflow_id)
        owner = crm.get_user(conn, deal.owner_user_id).name if deal.owner_user_id else None
        docs = [crm.get_document(conn, i) for i in partners.partner_document_ids(conn, deal_id, caller.id)]
        return {"deal": deal, "workflow": workflow, "owner": owner, "docs": docs,
                "notes": partners.partner_notes(conn, deal_id, caller.id), "me": partners.get_partner(conn, caller.id)}

    data = await view.node.db.read(read)
    return view.render("partner_deal.html", {**data, "errors": errors or {}, "note": note, "accept": ACCEPT,
                                             "allowed": ALLOWED_NAMES, "quote": urllib.parse.quote,
                                             "max_upload": megabytes(view.config.max_upload_bytes)}, status=status)


@pages.get("/partner/deals/{id}", portal="partner")
async def deal(view: View) -> web.StreamResponse:
    return await _deal_page(view, view.request.match_info["id"])


@pages.post("/partner/deals/{id}/notes", portal="partner", multiline=("body",))
async def add_note(view: View) -> web.StreamResponse:
    deal_id, caller = view.request.match_info["id"], view.user
    text = view.form.get("body", "").strip()
    await view.node.db.read(lambda conn: partner_deal(conn, caller, deal_id))
    if not text or len(text) > 8000:
        problem = "Enter the note" if not text else "The note must be 8,000 characters or fewer"
        return await _deal_page(view, deal_id, {"body": problem}, text, 400)

    def add(conn: sqlite3.Connection, ctx: Any) -> None:
        partner_deal(conn, caller, deal_id)
        crm.add_note(conn, parse(NoteIn, {"deal_id": deal_id, "body": text}), now=ctx.now, author_user_id=caller.id)
        partners.record(conn, caller.id, "Added a note", ctx.now, deal_id=deal_id)

    await view.node.transact(add)
    return view.redirect(f"/partner/deals/{deal_id}#notes", "Your note is added. Your broker sees it.")


@pages.post("/partner/deals/{id}/documents", portal="partner", raw_body=True)
async def upload(view: View) -> web.StreamResponse:
    deal_id, caller = view.request.match_info["id"], view.user
    await view.node.db.read(lambda conn: partner_deal(conn, caller, deal_id))  # not theirs: 404 before reading
    limit = view.config.max_upload_bytes
    if view.request.content_length is not None and view.request.content_length > limit + FRAMING_BYTES:
        return await _deal_page(view, deal_id, {"file": f"The file must be {megabytes(limit)} or smaller"}, status=413)
    try:
        label, name, stored = await _receive(view)
    except CrmError as exc:
        return await _deal_page(view, deal_id, {"file": exc.message}, status=413 if exc.code == "too_large" else 400)
    if stored is None:
        return await _deal_page(view, deal_id, {"file": "Choose a file to upload"}, status=400)

    def add(conn: sqlite3.Connection, ctx: Any) -> None:
        partner_deal(conn, caller, deal_id)
        data = parse(DocumentIn, {"deal_id": deal_id, "name": name, "label": label,
                                  "size_bytes": stored.size_bytes, "sha256": stored.sha256})
        doc = crm.add_document(conn, data, now=ctx.now, content_type=stored.content_type)
        partners.record_document(conn, doc.id, caller.id)
        partners.record(conn, caller.id, "Uploaded a file", ctx.now, deal_id=deal_id, detail=name)

    try:
        await view.node.transact(add)
    except CrmError as exc:
        await _forget(view, stored)
        return await _deal_page(view, deal_id, {"file": f"The file {exc.message.split(': ', 1)[-1]}"}, status=400)
    except BaseException:
        await _forget(view, stored)
        raise
    return view.redirect(f"/partner/deals/{deal_id}#files", f"{name} is uploaded. Your broker sees it.")


@pages.get("/partner/deals/{id}/documents/{document_id}", portal="partner")
async def download(view: View) -> web.StreamResponse:
    deal_id, document_id, caller = view.request.match_info["id"], view.request.match_info["document_id"], view.user

    def read(conn: sqlite3.Connection) -> Any:
        partner_deal(conn, caller, deal_id)
        if document_id not in partners.partner_document_ids(conn, deal_id, caller.id):
            raise CrmError("not_found", "This deal has no such file in your portal.")
        return crm.get_document(conn, document_id)

    return attachment(view, await view.node.db.read(read))
