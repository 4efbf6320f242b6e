"""Admin: the partner portal's settings and its partners (issue 13).

- ``/admin/partner-portal``: the partners' default workflow, the "partner added" and
  "deal shared" e-mail switches, which notifications partners may turn on, and the
  privacy disclosure partners confirm when they pass on a client;
- ``/admin/partners``: every partner, with their brokers; add one (name, e-mail,
  phone, brokers: the log-in e-mail goes out when the switch is on and they have a
  broker), edit, see their activity, send the log-in e-mail again, remove (their
  sessions end at once).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.crm import partners, portal
from node.crm import store as crm
from node.crm.errors import CrmError
from node.federation.outbox import TxContext
from node.mail import partner_mail
from node.web.partner_forms import field_problems
from node.web.views import Pages, View

pages = Pages()


# --- settings --------------------------------------------------------------------------


async def _settings_page(view: View, form: portal.PortalSettings | None = None, errors: dict[str, str] | None = None,
                         status: int = 200) -> web.Response:
    current, workflows = await view.node.db.read(lambda conn: (portal.settings(conn), crm.list_workflows(conn)))
    return view.render("partner_portal_settings.html", {
        "form": form or current, "workflows": [(w.id, w.name) for w in workflows],
        "notifications": portal.NOTIFICATIONS, "errors": errors or {}}, status=status)


@pages.get("/admin/partner-portal", admin_only=True)
async def settings_form(view: View) -> web.StreamResponse:
    return await _settings_page(view)


@pages.post("/admin/partner-portal", admin_only=True, multiline=("disclosure_text",))
async def save_settings(view: View) -> web.StreamResponse:
    form = portal.PortalSettings(
        default_workflow_id=view.value("default_workflow_id") or None,
        mail_partner_added=view.value("mail_partner_added") == "yes",
        mail_deal_shared=view.value("mail_deal_shared") == "yes",
        allowed=frozenset(view.values("allowed")) & portal.NOTIFICATIONS.keys(),
        disclosure_version=view.value("disclosure_version"),
        disclosure_text=view.form.get("disclosure_text", "").strip())
    errors = {}
    if form.default_workflow_id is None:
        errors["default_workflow_id"] = "Choose the workflow where partners create deals"
    if not form.disclosure_version:
        errors["disclosure_version"] = "Enter the privacy disclosure's version"
    if not form.disclosure_text:
        errors["disclosure_text"] = "Enter the privacy disclosure partners confirm"
    elif len(form.disclosure_text) > 8000:
        errors["disclosure_text"] = "The privacy disclosure must be 8,000 characters or fewer"
    if not errors:
        try:
            await view.node.db.write(lambda conn: portal.save_settings(conn, form))
        except CrmError as exc:
            errors[exc.field or "default_workflow_id"] = exc.message
    if errors:
        return await _settings_page(view, form, errors, 400)
    return view.redirect("/admin/partner-portal", "The partner portal's settings are saved.")


# --- partners --------------------------------------------------------------------------


@pages.get("/admin/partners", "partners_admin.html", admin_only=True)
async def partner_list(view: View) -> dict[str, Any]:
    people, settings = await view.node.db.read(lambda conn: (partners.list_partners(conn), portal.settings(conn)))
    return {"partners": people, "settings": settings}


async def _form(view: View, template: str, form: dict[str, Any], errors: dict[str, str], partner: Any = None,
                status: int = 200) -> web.Response:
    brokers = await view.node.db.read(lambda conn: crm.list_users(conn, active_only=True))
    settings = await view.node.db.read(portal.settings)
    return view.render(template, {"form": form, "errors": errors, "brokers": brokers, "partner": partner,
                                  "settings": settings}, status=status)


def _read(view: View) -> tuple[dict[str, Any], dict[str, str]]:
    form = {"name": view.value("name"), "email": view.value("email"), "phone": view.value("phone"),
            "brokers": view.values("brokers")}
    return form, {}


@pages.get("/admin/partners/new", admin_only=True)
async def new_form(view: View) -> web.StreamResponse:
    return await _form(view, "partner_admin_form.html", {"name": "", "email": "", "phone": "", "brokers": []}, {})


@pages.post("/admin/partners", admin_only=True)
async def add(view: View) -> web.StreamResponse:
    form, _ = _read(view)
    errors = field_problems({"name": ("name", "Name", form["name"]), "email": ("email", "E-mail address", form["email"]),
                             "phone": ("phone", "Phone number", form["phone"])})
    if not errors:
        config, me = view.config, view.user.id

        def create(conn: Any, ctx: TxContext) -> tuple[partners.Partner, bool]:
            data = partners.PartnerIn(name=form["name"], email=form["email"], phone=form["phone"])
            partner = partners.create_partner(conn, data, form["brokers"], added_by=me, now=ctx.now)
            sent = partner_mail.invite(conn, config, partner.id, ctx.now)
            ctx.effects.mail = sent
            return partner, sent

        try:
            partner, sent = await view.node.transact(create)
        except CrmError as exc:
            errors[exc.field if exc.field in ("email", "brokers") else "name"] = exc.message
    if errors:
        return await _form(view, "partner_admin_form.html", form, errors, status=400)
    if sent:
        return view.redirect("/admin/partners", f"{partner.name} is added. We e-mailed them a link to sign in.")
    why = ("they are assigned to no broker" if not partner.brokers
           else "the “partner added” e-mail is turned off in the portal settings")
    return view.redirect("/admin/partners", f"{partner.name} is added. No log-in e-mail was sent: {why}.")


async def _partner(view: View) -> partners.Partner:
    partner_id = view.request.match_info["id"]
    return await view.node.db.read(lambda conn: partners.get_partner(conn, partner_id))


@pages.get("/admin/partners/{id}/edit", admin_only=True)
async def edit_form(view: View) -> web.StreamResponse:
    p = await _partner(view)
    return await _form(view, "partner_admin_form.html", {"name": p.name, "email": p.email, "phone": p.phone,
                                                         "brokers": sorted(p.broker_ids)}, {}, partner=p)


@pages.post("/admin/partners/{id}", admin_only=True)
async def edit(view: View) -> web.StreamResponse:
    p = await _partner(view)
    form, _ = _read(view)
    form["email"] = p.email
    errors = field_problems({"name": ("name", "Name", form["name"]), "phone": ("phone", "Phone number", form["phone"])})
    if not errors:
        try:
            await view.node.transact(lambda conn, ctx: partners.update_partner(
                conn, p.id, name=form["name"], phone=form["phone"], broker_ids=form["brokers"], now=ctx.now))
        except CrmError as exc:
            errors[exc.field if exc.field == "brokers" else "name"] = exc.message
    if errors:
        return await _form(view, "partner_admin_form.html", form, errors, partner=p, status=400)
    return view.redirect("/admin/partners", f"{form['name']}’s details are saved.")


@pages.get("/admin/partners/{id}/activity", "partner_activity.html", admin_only=True)
async def activity(view: View) -> dict[str, Any]:
    p = await _partner(view)
    log = await view.node.db.read(lambda conn: partners.activity(conn, p.id))
    return {"partner": p, "log": log}


@pages.post("/admin/partners/{id}/invite", admin_only=True)
async def invite(view: View) -> web.StreamResponse:
    p = await _partner(view)
    config = view.config

    def send(conn: Any, ctx: TxContext) -> bool:
        ctx.effects.mail = partner_mail.invite(conn, config, p.id, ctx.now)
        return ctx.effects.mail

    if await view.node.transact(send):
        return view.redirect("/admin/partners", f"We e-mailed {p.name} a new link to sign in.")
    return view.redirect("/admin/partners", f"No e-mail was sent to {p.name}: assign them to a broker, and turn "
                                            "the “partner added” e-mail on in the portal settings.")


@pages.post("/admin/partners/{id}/remove", admin_only=True)
async def remove(view: View) -> web.StreamResponse:
    p = await _partner(view)
    await view.node.transact(lambda conn, ctx: partners.remove_partner(conn, p.id, ctx.now))
    return view.redirect("/admin/partners", f"{p.name} is removed: they are signed out and can no longer sign in. "
                                            "Their deals stay with their brokers.")
