"""The signed-in user's own settings: which e-mails they get, and their password."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from node.base.passwords import hash_password, password_problem, verify_password
from node.crm import accounts
from node.mail.kinds import CHOICES
from node.mail.queue import mail_choices, set_mail_choices
from node.web.views import SESSION_COOKIE, Pages, View

pages = Pages()


async def _context(view: View, errors: dict[str, str] | None = None) -> dict[str, Any]:
    choices = await view.node.db.read(lambda conn: mail_choices(conn, view.user.id))
    if view.caller is not None and not view.caller.is_admin:
        choices.pop("delivery_failing", None)
    return {"kinds": [k for k in CHOICES if k.name in choices], "choices": choices, "errors": errors or {}}


@pages.get("/settings", "settings.html")
async def settings(view: View) -> dict[str, Any]:
    return await _context(view)


@pages.post("/settings/mail")
async def save_mail(view: View) -> web.StreamResponse:
    wanted = set(view.values("mail"))
    await view.node.db.write(lambda conn: set_mail_choices(conn, view.user.id, wanted))
    return view.redirect("/settings", "Your e-mail choices are saved.")


@pages.post("/settings/password")
async def change_password(view: View) -> web.StreamResponse:
    current, new, again = (view.form.get(n, "") for n in ("current", "password", "password_again"))
    record = await view.node.db.read(lambda conn: accounts.signin_record(conn, view.user.email))
    errors: dict[str, str] = {}
    if not await asyncio.to_thread(verify_password, record.password_hash if record else None, current):
        errors["current"] = "Your current password is not right."
    elif problem := password_problem(new, view.user.email):
        errors["password"] = f"Your new password {problem}."
    elif new != again:
        errors["password_again"] = "The two new passwords are not the same."  # noqa: S105
    if errors:
        return view.render("settings.html", await _context(view, errors), status=400)
    hashed = await asyncio.to_thread(hash_password, new)
    now = view.node.clock.now()

    def change(conn: Any) -> str:
        accounts.set_password_hash(conn, view.user.id, hashed, now)  # ends every session
        return accounts.start_session(conn, view.user.id, now)

    sid = await view.node.db.write(change)
    view.set_cookies.append((SESSION_COOKIE, sid, {}))
    return view.redirect("/settings", "Your password is changed. Your other sessions are signed out.")
