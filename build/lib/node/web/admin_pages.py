"""Admin: the node's facts and the people who use it.

- ``/admin``: the node's name, address, fingerprint and id, and the admin sections;
- ``/admin/users``: every user with their role, whether they are active and whether
  their sign-in is locked; add a user (their one-time set-password link mailed, or
  shown once on the next page), deactivate or reactivate (``node.crm.users`` rules:
  never the last admin, never a workflow's owner), e-mail a reset link, and lift a
  sign-in lock (``node.crm.accounts``).

Every page here is ``admin_only``, as the matching API routes are.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from node.base.config import Config
from node.crm import accounts, api_tokens, users
from node.crm import store as crm_store
from node.crm.errors import CrmError
from node.federation.delivery_health import peer_health
from node.federation.outbox import TxContext
from node.mail.links import issue_link
from node.mail.queue import queue_state
from node.web.views import Pages, View

pages = Pages()
ROLES = [("broker", "Broker"), ("admin", "Admin")]


def mail_note(config: Config) -> str:
    """Where the node's e-mail goes, in one sentence."""
    if config.smtp_host:
        return f"E-mail is sent through {config.smtp_host}."
    return (f"No SMTP server is set: e-mail is not sent but written as .eml files to {config.mail_dir}.")


@pages.get("/admin", "admin.html", admin_only=True)
async def admin_index(view: View) -> dict[str, Any]:
    node, now = view.node, view.node.clock.now()

    def read(conn: Any) -> dict[str, Any]:
        people = crm_store.list_users(conn)
        return {
            "active_users": sum(u.active for u in people),
            "locked": len(accounts.lockouts(conn, now)),
            "live_tokens": sum(t.revoked_at is None and t.user_active for t in api_tokens.list_tokens(conn)),
            "peers": peer_health(conn, now),
            "mail": queue_state(conn, now),
        }

    facts = await node.db.read(read)
    return {"facts": facts, "node_facts": {"name": view.config.org_name, "url": node.base_url,
                                          "fingerprint": node.keys.fingerprint, "node_id": node.me},
            "mail_note": mail_note(view.config), "smtp": bool(view.config.smtp_host)}


# --- users -----------------------------------------------------------------------------


async def _users(view: View, *, problem: str | None = None, status: int = 200) -> web.Response:
    now = view.node.clock.now()
    people, locks = await view.node.db.read(lambda conn: (crm_store.list_users(conn), accounts.lockouts(conn, now)))
    locked = {lock.email.lower(): lock.locked_until for lock in locks}
    return view.render("admin_users.html", {"users": people, "locked": locked, "problem": problem,
                                            "roles": dict(ROLES)}, status=status)


@pages.get("/admin/users", admin_only=True)
async def users_list(view: View) -> web.StreamResponse:
    return await _users(view)


@pages.get("/admin/users/new", "admin_user_new.html", admin_only=True)
async def user_form(view: View) -> dict[str, Any]:
    return {"form": {"name": "", "email": "", "role": "broker", "send_email": True}, "errors": {}, "roles": ROLES,
            "mail_note": mail_note(view.config)}


@pages.post("/admin/users", admin_only=True)
async def add_user(view: View) -> web.StreamResponse:
    form = {"name": view.value("name"), "email": view.value("email"), "role": view.value("role"),
            "send_email": view.value("send_email") == "yes"}
    errors: dict[str, str] = {}
    if not form["name"]:
        errors["name"] = "Enter the person's name."
    if "@" not in form["email"]:
        errors["email"] = "Enter an e-mail address, like name@example.com."
    if form["role"] not in dict(ROLES):
        errors["role"] = "Choose a role: broker or admin."
    if not errors:
        config = view.config

        def create(conn: Any, ctx: TxContext) -> tuple[Any, str]:
            user = crm_store.create_user(conn, form["email"], form["name"], form["role"], ctx.now)
            ctx.effects.mail = form["send_email"]
            return user, issue_link(conn, config, user.id, "set", ctx.now, mail=form["send_email"])

        try:
            user, link = await view.node.transact(create)
        except CrmError as exc:
            if exc.code == "conflict" and exc.field == "email":
                errors["email"] = "There is already a user with this e-mail address."
            else:
                field = exc.field if exc.field in ("name", "email", "role") else "name"
                errors[field] = exc.message.split(": ", 1)[-1].capitalize() + "."
    if errors:
        return view.render("admin_user_new.html", {"form": form, "errors": errors, "roles": ROLES,
                                                   "mail_note": mail_note(view.config)}, status=400)
    if form["send_email"]:
        where = "" if view.config.smtp_host else f" (no SMTP server is set: it is in {view.config.mail_dir})"
        return view.redirect("/admin/users", f"{user.name} is added. We e-mailed them a link to set their "
                                             f"password{where}.")
    expires = view.node.clock.now() + timedelta(seconds=view.config.password_link_ttl_s)
    # Shown in the answer to the POST, once: the link is not stored, only its hash.
    return view.render("admin_user_added.html", {"user": user, "link": link, "expires_at": expires})


async def _user(view: View) -> Any:
    user_id = view.request.match_info["id"]
    return await view.node.db.read(lambda conn: crm_store.get_user(conn, user_id))


def _why_not(conn: Any, user: Any) -> str:
    """Why ``user`` cannot be deactivated, in words for the admin (the rule is
    ``node.crm.users``'s; this only explains it with names)."""
    if user.role == "admin" and not any(u.role == "admin" and u.id != user.id
                                        for u in crm_store.list_users(conn, active_only=True)):
        return f"{user.name} is the only active admin. Make another user an admin before you deactivate them."
    owned = [w.name for w in crm_store.list_workflows(conn) if w.owner_user_id == user.id]
    if owned:
        return (f"{user.name} owns the workflow{'s' if len(owned) > 1 else ''} {', '.join(owned)}. Give "
                f"{'them' if len(owned) > 1 else 'it'} another owner before you deactivate {user.name}.")
    return f"{user.name} cannot be deactivated now."


@pages.post("/admin/users/{id}/deactivate", admin_only=True)
async def deactivate(view: View) -> web.StreamResponse:
    user = await _user(view)
    if user.id == view.user.id:
        return await _users(view, problem="You cannot deactivate yourself. Another admin can.", status=409)

    def change(conn: Any, ctx: TxContext) -> str | None:
        try:
            users.update_user(conn, user.id, active=False, now=ctx.now)  # their sessions end
        except CrmError as exc:
            if exc.code != "conflict":
                raise
            return _why_not(conn, user)
        return None

    problem = await view.node.transact(change)
    if problem:
        return await _users(view, problem=problem, status=409)
    return view.redirect("/admin/users", f"{user.name} is deactivated: they are signed out, and their API "
                                         "tokens no longer work.")


@pages.post("/admin/users/{id}/reactivate", admin_only=True)
async def reactivate(view: View) -> web.StreamResponse:
    user = await _user(view)
    await view.node.transact(lambda conn, ctx: users.update_user(conn, user.id, active=True, now=ctx.now))
    return view.redirect("/admin/users", f"{user.name} is active again and can sign in.")


@pages.post("/admin/users/{id}/reset", admin_only=True)
async def send_reset(view: View) -> web.StreamResponse:
    user = await _user(view)
    if not user.active:
        return await _users(view, problem=f"{user.name} is deactivated. Reactivate them first.", status=409)
    config = view.config

    def reset(conn: Any, ctx: TxContext) -> None:
        issue_link(conn, config, user.id, "reset", ctx.now, mail=True)
        ctx.effects.mail = True

    await view.node.transact(reset)
    return view.redirect("/admin/users", f"We e-mailed {user.name} a link to choose a new password. Their "
                                         "password stays as it is until they use it.")


@pages.post("/admin/users/{id}/unlock", admin_only=True)
async def unlock(view: View) -> web.StreamResponse:
    user = await _user(view)
    was_locked = await view.node.db.write(lambda conn: accounts.unlock(conn, user.email))
    return view.redirect("/admin/users", f"{user.name} can sign in again." if was_locked
                         else f"{user.name} was not locked out.")
