"""A partner's way in and their own settings (issue 13), on the console's account
machinery (``node.crm.accounts``, ``node.web.auth_pages``) with the portal's look.

- ``/partner/login`` signs in through the console's ``/login`` (the same limits and
  lockout), and ``/partner/set-password/{token}`` is the console's set-password step;
- ``/partner/settings``: name and dark mode, e-mail address (the new one is used only
  once confirmed through a link sent to it), password, and the notifications the
  organisation allows;
- ``/partner/confirm-email/{token}``: confirm the new address (a button: a link that
  a mail scanner opens changes nothing).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from node.base.passwords import hash_password, password_problem, verify_password
from node.crm import accounts, partners, portal
from node.federation.outbox import TxContext
from node.mail import partner_mail
from node.web.auth_pages import _holder, _next, choose_password
from node.web.partner_forms import field_problems
from node.web.views import SESSION_COOKIE, Pages, View

pages = Pages()


@pages.get("/partner/login", "login.html", signed_in=False, portal="partner")
async def login_form(view: View) -> web.StreamResponse | dict[str, Any]:
    target = _next(view)
    target = target if target.startswith("/partner/") else "/partner/"
    if view.caller is not None:
        return view.redirect(target)
    return {"email": "", "next": target, "error": None, "portal": "partner"}


@pages.get("/partner/set-password/{token}", "set_password.html", signed_in=False, portal="partner")
async def set_password_form(view: View) -> dict[str, Any]:
    return {"holder": await _holder(view), "error": None, "portal": "partner"}


@pages.post("/partner/set-password/{token}", signed_in=False, portal="partner")
async def set_password(view: View) -> web.StreamResponse:
    return await choose_password(view, "/partner/", portal="partner")


async def _page(view: View, errors: dict[str, str] | None = None, form: dict[str, str] | None = None,
                status: int = 200) -> web.Response:
    def read(conn: Any) -> tuple[Any, Any, Any]:
        return (partners.get_partner(conn, view.user.id), portal.settings(conn).allowed,
                portal.notifications_on(conn, view.user.id))

    mine, allowed, on = await view.node.db.read(read)
    return view.render("partner_settings.html", {
        "me": mine, "errors": errors or {}, "form": form or {"name": mine.name, "email": ""},
        "notifications": [(k, label) for k, label in portal.NOTIFICATIONS.items() if k in allowed], "on": on},
        status=status)


@pages.get("/partner/settings", portal="partner")
async def settings(view: View) -> web.StreamResponse:
    return await _page(view)


@pages.post("/partner/settings/profile", portal="partner")
async def save_profile(view: View) -> web.StreamResponse:
    name, dark = view.value("name"), view.value("dark_mode") == "yes"
    errors = field_problems({"name": ("name", "Name", name)})
    if errors:
        return await _page(view, errors, {"name": name, "email": ""}, 400)
    me = view.user

    def save(conn: Any, ctx: TxContext) -> None:
        partners.set_profile(conn, me.id, name=name, dark_mode=dark)
        partners.record(conn, me.id, "Changed their name or look", ctx.now)

    await view.node.transact(save)
    return view.redirect("/partner/settings", "Your details are saved.")


@pages.post("/partner/settings/email", portal="partner")
async def change_email(view: View) -> web.StreamResponse:
    email = view.value("email")
    errors = field_problems({"email": ("email", "New e-mail address", email)})
    if not errors and email.casefold() == view.user.email.casefold():
        errors["email"] = "This is already your e-mail address"
    if errors:
        return await _page(view, errors, {"name": view.user.name, "email": email}, 400)
    config, me = view.config, view.user

    def ask(conn: Any, ctx: TxContext) -> None:
        partner_mail.confirm_email(conn, config, me.id, email, me.name, ctx.now)
        partners.record(conn, me.id, "Asked to change their e-mail address", ctx.now)
        ctx.effects.mail = True

    await view.node.transact(ask)
    return view.redirect("/partner/settings", f"We sent a link to {email}. Your address changes when you open it; "
                                              "until then, sign in with your current one.")


@pages.post("/partner/settings/password", portal="partner")
async def change_password(view: View) -> web.StreamResponse:
    current, new, again = (view.form.get(n, "") for n in ("current", "password", "password_again"))
    record = await view.node.db.read(lambda conn: accounts.signin_record(conn, view.user.email))
    errors: dict[str, str] = {}
    if not await asyncio.to_thread(verify_password, record.password_hash if record else None, current):
        errors["current"] = "Your current password is not right"
    elif problem := password_problem(new, view.user.email):
        errors["password"] = f"Your new password {problem}"
    elif new != again:
        errors["password_again"] = "The two new passwords are not the same"  # noqa: S105
    if errors:
        return await _page(view, errors, status=400)
    hashed = await asyncio.to_thread(hash_password, new)
    me = view.user

    def change(conn: Any, ctx: TxContext) -> str:
        accounts.set_password_hash(conn, me.id, hashed, ctx.now)  # ends every session
        partners.record(conn, me.id, "Changed their password", ctx.now)
        return accounts.start_session(conn, me.id, ctx.now)

    sid = await view.node.transact(change)
    view.set_cookies.append((SESSION_COOKIE, sid, {}))
    return view.redirect("/partner/settings", "Your password is changed. Your other sessions are signed out.")


@pages.post("/partner/settings/notifications", portal="partner")
async def save_notifications(view: View) -> web.StreamResponse:
    wanted = set(view.values("notify"))
    await view.node.db.write(lambda conn: portal.set_notifications(conn, view.user.id, wanted))
    return view.redirect("/partner/settings", "Your notification choices are saved.")


@pages.get("/partner/confirm-email/{token}", "partner_confirm_email.html", signed_in=False, portal="partner")
async def confirm_form(view: View) -> dict[str, Any]:
    token, now = view.request.match_info["token"], view.node.clock.now()
    email = await view.node.db.read(lambda conn: portal.pending_email_change(conn, token, now))
    return {"email": email, "failed": email is None}


@pages.post("/partner/confirm-email/{token}", signed_in=False, portal="partner")
async def confirm(view: View) -> web.StreamResponse:
    token = view.request.match_info["token"]

    def use(conn: Any, ctx: TxContext) -> tuple[str, str] | None:
        done = portal.use_email_change(conn, token, ctx.now)
        if done is not None:
            partners.record(conn, done[0], "Confirmed a new e-mail address", ctx.now)
        return done

    done = await view.node.transact(use)
    if done is None:
        return view.render("partner_confirm_email.html", {"failed": True}, status=400)
    return view.redirect("/partner/settings" if view.caller else "/partner/login",
                         f"Your e-mail address is now {done[1]}.")
