"""Signing in and out, setting a password through a one-time link, and asking for a reset.

Sign-in is limited twice: per client address in memory (``FailureLimiter``, as the
API's tokens are), and per e-mail address in the database (``node.crm.accounts``: a lock
that outlives a restart and that an admin lifts). A wrong e-mail and a wrong password get
the same answer, after the same argon2 work. A sign-in always starts a new session id.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from node.base.passwords import hash_password, password_problem, verify_password
from node.base.ratelimit import FailureLimiter, retry_after
from node.crm import accounts, partners
from node.http.clients import client_address
from node.mail.links import issue_link
from node.web.page_state import SIGNIN_GUESSES
from node.web.views import SESSION_COOKIE, Pages, View, safe_next

pages = Pages()

#: Wrong passwords (and reset requests) by client address, across every e-mail address.
def guesses(view: View) -> FailureLimiter:
    return view.request.app[SIGNIN_GUESSES]


def _next(view: View) -> str:
    return safe_next(view.value("next") or view.request.query.get("next", "/") or "/")


@pages.get("/login", "login.html", signed_in=False)
async def login_form(view: View) -> web.StreamResponse | dict[str, Any]:
    if view.caller is not None:
        return view.redirect(_next(view))
    return {"email": "", "next": _next(view), "error": None}


@pages.post("/login", signed_in=False)
async def login(view: View) -> web.StreamResponse:
    email, password, target = view.value("email"), view.form.get("password", ""), _next(view)
    node, config = view.node, view.config

    def again(error: str, status: int) -> web.Response:
        return view.render("login.html", {"email": email, "next": target, "error": error,
                                          "portal": view.value("portal")}, status=status)

    if not email or not password:
        return again("Enter your e-mail address and your password.", 400)
    client = client_address(view.request)
    if wait_s := guesses(view).charge(client=client):
        return again(f"Too many attempts from your address. Try again in {retry_after(wait_s)} seconds.", 429)
    now = node.clock.now()
    until = await node.db.read(lambda conn: accounts.locked_until(conn, email, now))
    if until is not None:
        return again("This account is locked after too many wrong passwords. Ask an admin to unlock it, "
                     f"or try again after {until.astimezone(config.zone):%H:%M}.", 423)
    record = await node.db.read(lambda conn: accounts.signin_record(conn, email))
    ok = await asyncio.to_thread(verify_password, record.password_hash if record else None, password)
    if not ok or record is None or not record.active:
        locked = await node.db.write(lambda conn: accounts.record_failure(
            conn, email, now, limit=config.signin_failures_limit, window_s=config.signin_window_s,
            lock_s=config.signin_lock_s))
        if locked is not None:
            return again("Too many wrong passwords: this account is now locked. Ask an admin to unlock it, "
                         f"or try again after {locked.astimezone(config.zone):%H:%M}.", 423)
        return again("That e-mail address and password do not match an account.", 401)
    guesses(view).refund(client=client)
    old = view.request.cookies.get(SESSION_COOKIE)

    def sign_in(conn: Any) -> str:
        accounts.unlock(conn, email)
        if old:
            accounts.end_session(conn, old, now)
        if record.caller.is_partner:
            partners.record(conn, record.caller.id, "Signed in", now)
        return accounts.start_session(conn, record.caller.id, now)

    sid = await node.db.write(sign_in)
    view.set_cookies.append((SESSION_COOKIE, sid, {}))
    return view.redirect(target)


@pages.post("/logout", signed_in=False)
async def logout(view: View) -> web.StreamResponse:
    sid = view.request.cookies.get(SESSION_COOKIE)
    if sid:
        now = view.node.clock.now()
        await view.node.db.write(lambda conn: accounts.end_session(conn, sid, now))
    view.set_cookies.append((SESSION_COOKIE, "", {"max_age": 0}))
    return view.redirect("/partner/login" if view.value("portal") == "partner" else "/login", "You are signed out.")


async def _holder(view: View) -> accounts.LinkHolder | None:
    token, now = view.request.match_info["token"], view.node.clock.now()
    return await view.node.db.read(lambda conn: accounts.password_link_holder(conn, token, now))


@pages.get("/set-password/{token}", "set_password.html", signed_in=False)
async def set_password_form(view: View) -> dict[str, Any]:
    return {"holder": await _holder(view), "error": None}


@pages.post("/set-password/{token}", signed_in=False)
async def set_password(view: View) -> web.StreamResponse:
    return await choose_password(view, "/")


async def choose_password(view: View, home: str, portal: str = "") -> web.StreamResponse:
    """Set the password through the link in the URL, sign in, and go ``home``; the
    console's page and the partner portal's (``portal="partner"``, its look) share it."""
    holder = await _holder(view)
    password, again = view.form.get("password", ""), view.form.get("password_again", "")
    problem = None
    if holder is not None:
        problem = password_problem(password, holder.email)
        problem = f"Your password {problem}." if problem else None
        if problem is None and password != again:
            problem = "The two passwords are not the same."
    if holder is None or problem:
        return view.render("set_password.html", {"holder": holder, "error": problem, "portal": portal}, status=400)
    hashed = await asyncio.to_thread(hash_password, password)
    token, now = view.request.match_info["token"], view.node.clock.now()

    def use(conn: Any) -> str | None:
        used = accounts.use_password_link(conn, token, hashed, now)
        return None if used is None else accounts.start_session(conn, used.user_id, now)

    sid = await view.node.db.write(use)
    if sid is None:
        return view.render("set_password.html", {"holder": None, "error": None, "portal": portal}, status=400)
    view.set_cookies.append((SESSION_COOKIE, sid, {}))
    return view.redirect(home, "Your password is set. You are signed in.")


@pages.get("/forgot", "forgot.html", signed_in=False)
async def forgot_form(view: View) -> dict[str, Any]:
    return {"sent": False, "email": "", "error": None}


@pages.post("/forgot", signed_in=False)
async def forgot(view: View) -> web.StreamResponse:
    email = view.value("email")
    if "@" not in email or len(email) > 254:
        return view.render("forgot.html", {"sent": False, "email": email, "error": "Enter your e-mail address."},
                           status=400)
    client = client_address(view.request)
    if wait_s := guesses(view).charge(client=client):
        return view.render("forgot.html", {"sent": False, "email": email, "error":
                           f"Too many attempts from your address. Try again in {retry_after(wait_s)} seconds."},
                           status=429)
    node, now = view.node, view.node.clock.now()

    def reset(conn: Any) -> None:
        record = accounts.signin_record(conn, email)
        if record is not None and record.active:
            issue_link(conn, node.config, record.caller.id, "reset", now, mail=True)

    await node.db.write(reset)
    node.mail.kick()
    return view.redirect("/forgot/sent")


@pages.get("/forgot/sent", "forgot.html", signed_in=False)
async def forgot_sent(view: View) -> dict[str, Any]:
    return {"sent": True, "email": "", "error": None}
