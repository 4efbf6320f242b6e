"""The broker's side of a deal's client portal (``/deals/{id}/portal``): share it with a
contact (refused, saying what is missing, until the deal holds its labelled compliance
documents and the broker has set a privacy disclosure), and for each client: what is
outstanding, their answers, acknowledgements and files, messages, asking for another
document, and revoking (confirmed; it ends the client's sessions at once).

Brokers and admins alike, as the deal pages are.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from node.crm import store as crm
from node.crm.errors import CrmError
from node.portal import access, client_data, notify
from node.portal import settings as portal
from node.web.client_pages import send_file
from node.web.deals_pages import deal_of
from node.web.views import Pages, View

pages = Pages()

#: Documents a broker commonly asks for; the deal's own document labels are offered too.
COMMON_DOCUMENTS = ("Photo ID", "Payslips (last 2)", "Bank statements (last 3 months)", "Tax return",
                    "Rates notice", "Contract of sale", "Loan statements")


async def _context(view: View, deal_id: str, errors: dict[str, str] | None = None,
                   chosen: dict[str, Any] | None = None) -> dict[str, Any]:
    me = view.user.id

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        deal = deal_of(conn, deal_id)
        contacts = [(link, crm.get_contact(conn, link.contact_id)) for link in deal.contacts]
        shared = client_data.shared_contacts(conn, deal_id)
        labels = sorted({d.label for d in crm.list_documents(conn, deal_id) if d.label}
                        - {x for x in portal.required_labels(conn)})
        return {"deal": deal, "contacts": contacts, "shared": shared,
                "inviteable": [(link, c) for link, c in contacts if c.id not in shared],
                "blockers": access.blockers(conn, deal_id, me), "flows": portal.list_flows(conn, me),
                "clients": client_data.deal_portal(conn, deal_id), "required": portal.required_labels(conn),
                "documents": [*COMMON_DOCUMENTS, *labels]}

    data = await view.node.db.read(read)
    data["contact_options"] = [(c.id, c.display_name) for _, c in data["inviteable"]]
    data["flow_options"] = [(f.id, f"{f.name} ({f.loan_type})") for f in data["flows"]]
    return {**data, "errors": errors or {}, "chosen": chosen or {}}


@pages.get("/deals/{id}/portal", "portal_deal.html")
async def deal_portal(view: View) -> dict[str, Any]:
    return await _context(view, view.request.match_info["id"])


@pages.post("/deals/{id}/portal/invite", "portal_deal.html")
async def invite(view: View) -> web.StreamResponse:
    deal_id = view.request.match_info["id"]
    documents = view.values("documents") + [d for d in view.value("other_documents").split(",") if d.strip()]
    chosen: dict[str, Any] = {"contact_id": view.value("contact_id"), "flow_id": view.value("flow_id"),
                              "see_others": view.value("see_others"), "documents": documents}
    errors = {}
    if not chosen["contact_id"]:
        errors["contact_id"] = "Choose the client to share the portal with"
    if chosen["see_others"] not in ("yes", "no"):
        errors["see_others"] = "Choose whether the client may see the other applicants’ details"
    if not chosen["flow_id"]:
        errors["flow_id"] = "Choose a flow (create one in your client portal settings)"
    if not documents:
        errors["documents"] = "Choose at least one document the client must upload"
    if not errors:
        def share(conn: sqlite3.Connection, ctx: Any) -> access.Invited:
            invited = access.invite(conn, ctx.config, deal_id=deal_id, contact_id=chosen["contact_id"],
                                    broker_user_id=view.user.id, flow_id=chosen["flow_id"],
                                    see_others=chosen["see_others"] == "yes", documents=documents, now=ctx.now)
            ctx.effects.mail = True
            return invited

        try:
            invited = await view.node.transact(share)
        except CrmError as exc:
            # what blocks sharing is about the deal and the settings, not a field: the summary
            # links to the box that lists it
            errors[exc.field if exc.field in ("contact_id", "flow_id", "documents", "blockers")
                   else "contact_id"] = exc.message
        else:
            note = f" The passcode went by e-mail: {invited.sms_problem}." if invited.sms_problem else ""
            return view.redirect(f"/deals/{deal_id}/portal", f"The portal is shared with {invited.name}.{note}")
    return view.render("portal_deal.html", await _context(view, deal_id, errors, chosen), status=400)


def _client(conn: sqlite3.Connection, deal_id: str, access_id: str) -> access.Client:
    deal_of(conn, deal_id)
    access.live_access(conn, access_id, deal_id)
    return access.client_of(conn, access_id)


@pages.post("/deals/{id}/portal/{access}/request")
async def ask_document(view: View) -> web.StreamResponse:
    deal_id, access_id = view.request.match_info["id"], view.request.match_info["access"]
    name = view.value("name")
    if not name or len(name) > 100:
        raise CrmError("invalid", "Name the document to ask for, in 100 characters or fewer.", "name")

    def ask(conn: sqlite3.Connection, ctx: Any) -> str:
        client = _client(conn, deal_id, access_id)
        access.add_request(conn, access_id, name, ctx.now)
        access.event(conn, access_id, "Document requested", f"{name}, from {client.name}", ctx.now)
        notify.notify(conn, ctx.config, access_id, "document_requested", ctx.now,
                      mail_kind="client_document_requested", context={"document": name},
                      sms_text=f"{ctx.config.org_name} asks you to upload: {name}. Sign in to your client portal.")
        ctx.effects.mail = True
        return client.name

    who = await view.node.transact(ask)
    return view.redirect(f"/deals/{deal_id}/portal#client-{access_id}", f"{who} is asked for {name}.")


@pages.post("/deals/{id}/portal/{access}/message", multiline=("body",))
async def message(view: View) -> web.StreamResponse:
    deal_id, access_id = view.request.match_info["id"], view.request.match_info["access"]
    body = view.form.get("body", "")

    def send(conn: sqlite3.Connection, ctx: Any) -> str:
        client = _client(conn, deal_id, access_id)
        client_data.add_message(conn, access_id, body, ctx.now, author_user_id=view.user.id)
        access.event(conn, access_id, "Message to the client", f"To {client.name}: {body.strip()[:200]}", ctx.now)
        notify.notify(conn, ctx.config, access_id, "message", ctx.now, mail_kind="client_message", context={},
                      sms_text=f"{ctx.config.org_name}: you have a new message in your client portal.")
        ctx.effects.mail = True
        return client.name

    who = await view.node.transact(send)
    return view.redirect(f"/deals/{deal_id}/portal#client-{access_id}", f"Your message to {who} is sent.")


@pages.get("/deals/{id}/portal/{access}/revoke", "portal_revoke.html")
async def revoke_page(view: View) -> dict[str, Any]:
    deal_id, access_id = view.request.match_info["id"], view.request.match_info["access"]

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        return {"deal": deal_of(conn, deal_id), "client": _client(conn, deal_id, access_id)}

    return await view.node.db.read(read)


@pages.post("/deals/{id}/portal/{access}/revoke")
async def revoke(view: View) -> web.StreamResponse:
    deal_id, access_id = view.request.match_info["id"], view.request.match_info["access"]

    def end(conn: sqlite3.Connection, ctx: Any) -> str:
        deal_of(conn, deal_id)
        return access.revoke(conn, access_id, deal_id, view.user.id, ctx.now)

    name = await view.node.transact(end)
    return view.redirect(f"/deals/{deal_id}/portal", f"{name} no longer has access to the portal.")


@pages.get("/deals/{id}/portal/files/{file_id}")
async def download(view: View) -> web.StreamResponse:
    deal_id, file_id = view.request.match_info["id"], view.request.match_info["file_id"]

    def read(conn: sqlite3.Connection) -> Any:
        deal_of(conn, deal_id)
        return client_data.file_on_deal(conn, deal_id, file_id)

    return await send_file(view, await view.node.db.read(read), "Ask the client to upload it again.")
