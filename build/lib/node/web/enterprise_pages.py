"""Admin: the enterprise (issue 13). Mark an active connection as leading to a child or a
parent organisation, and, for a child, add partners to it: one of ours ("existing") or a
new one, sent as a signed ``enterprise-partner`` message with the profile only
(``node.federation.enterprise``). The child creates the account and invites them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.base.ids import new_id
from node.crm import partners
from node.crm.errors import CrmError
from node.federation import enterprise
from node.federation.outbox import TxContext
from node.storage import store
from node.web.partner_forms import field_problems
from node.web.views import Pages, View

pages = Pages()
RELATION_WORDS = [("", "Neither"), ("child", "Our child organisation"), ("parent", "Our parent organisation")]


@pages.get("/admin/enterprise", "enterprise.html", admin_only=True)
async def overview(view: View) -> dict[str, Any]:
    def read(conn: Any) -> dict[str, Any]:
        active = [c for c in store.list_connections(conn) if c.state == "active"]
        return {"connections": active, "relations": enterprise.relations(conn)}

    return {**await view.node.db.read(read), "relation_words": RELATION_WORDS}


@pages.post("/admin/enterprise/{id}", admin_only=True)
async def set_relation(view: View) -> web.StreamResponse:
    relation = view.value("relation") or None
    connection_id, me = view.request.match_info["id"], view.user.id

    def mark(conn: Any, ctx: TxContext) -> str:
        return enterprise.set_relation(conn, ctx, connection_id, relation, me).name

    name = await view.node.transact(mark)
    words = {"child": "our child organisation", "parent": "our parent organisation"}.get(relation or "",
                                                                                       "neither parent nor child")
    return view.redirect("/admin/enterprise", f"{name} is {words}.")


async def _child(view: View) -> Any:
    connection_id = view.request.match_info["id"]

    def read(conn: Any) -> Any:
        c = store.get_connection(conn, connection_id)
        if c is None or c.state != "active" or enterprise.relation_of(conn, c.id) != "child":
            raise CrmError("not_found", "There is no such child organisation here.")
        return c

    return await view.node.db.read(read)


async def _partners_page(view: View, errors: dict[str, str] | None = None, form: dict[str, str] | None = None,
                         status: int = 200) -> web.Response:
    child = await _child(view)
    sent, ours = await view.node.db.read(lambda conn: (enterprise.sent_to(conn, child.id),
                                                       partners.list_partners(conn)))
    return view.render("enterprise_partners.html", {
        "child": child, "sent": sent, "ours": [(p.id, f"{p.name} ({p.email})") for p in ours],
        "errors": errors or {}, "form": form or {"name": "", "email": "", "phone": ""}}, status=status)


@pages.get("/admin/enterprise/{id}/partners", admin_only=True)
async def child_partners(view: View) -> web.StreamResponse:
    return await _partners_page(view)


@pages.post("/admin/enterprise/{id}/partners", admin_only=True)
async def add_to_child(view: View) -> web.StreamResponse:
    child = await _child(view)
    admin = view.user.person
    if view.value("kind") == "existing":
        partner_id = view.value("partner_id")
        if not partner_id:
            return await _partners_page(view, {"partner_id": "Choose the partner to add"}, status=400)

        def send_ours(conn: Any, ctx: TxContext) -> str:
            p = partners.get_partner(conn, partner_id)
            enterprise.send_partner(conn, ctx, child.id, partner_ref=p.id, name=p.name, email=p.email,
                                    phone=p.phone, partner_id=p.id, admin=admin)
            return p.name

        name = await view.node.transact(send_ours)
    else:
        form = {"name": view.value("name"), "email": view.value("email"), "phone": view.value("phone")}
        errors = field_problems({"name": ("name", "Name", form["name"]),
                                 "email": ("email", "E-mail address", form["email"]),
                                 "phone": ("phone", "Phone number", form["phone"])})
        if errors:
            return await _partners_page(view, errors, form, 400)

        def send_new(conn: Any, ctx: TxContext) -> str:
            enterprise.send_partner(conn, ctx, child.id, partner_ref=new_id("ptr", ctx.now), name=form["name"],
                                    email=form["email"], phone=form["phone"], partner_id=None, admin=admin)
            return form["name"]

        name = await view.node.transact(send_new)
    return view.redirect(f"/admin/enterprise/{child.id}/partners",
                         f"{name} is on the way to {child.name}, which creates their account and invites them.")
