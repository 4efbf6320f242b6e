"""Admin-API routes for the people who use the API: users (added, listed, changed or
deactivated) and their API tokens (shown once; only the hash is stored)."""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

from aiohttp import web
from pydantic import StrictBool

from node.base.errors import ApiError
from node.base.ids import new_id
from node.base.tokens import hash_token, new_token
from node.crm import store as crm_store
from node.crm import users
from node.crm.models import Email, Id, Model, Name, Role, ShortText
from node.federation.outbox import TxContext
from node.federation.runtime import Node
from node.http.api import Caller, In, Route
from node.http.json_answers import model_json
from node.mail.links import issue_link
from node.storage import store


class UserIn(In):
    email: Email
    name: Name
    role: Literal["admin", "broker"] = "broker"
    #: Also e-mail the new user their one-time set-password link.
    send_email: StrictBool = False


class UserPatch(Model):
    """Only the fields given change."""

    name: Name | None = None
    role: Role | None = None
    #: false deactivates the user: their tokens stop working; their records stay.
    active: StrictBool | None = None


class TokenIn(In):
    label: ShortText = ""
    user_id: Id | None = None


async def create_user(request: web.Request, node: Node, caller: Caller, body: UserIn) -> Any:
    def create(conn: sqlite3.Connection, ctx: TxContext) -> tuple[Any, str]:
        user = crm_store.create_user(conn, body.email, body.name, body.role, ctx.now)
        ctx.effects.mail = body.send_email
        return user, issue_link(conn, node.config, user.id, "set", ctx.now, mail=body.send_email)

    user, link = await node.transact(create)
    return {"user": model_json(user), "password_link": link,
            "note": "the link sets the user's password once; it is e-mailed only with send_email"}


async def list_users(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    return {"users": [model_json(u) for u in await node.db.read(crm_store.list_users)]}


async def update_user(request: web.Request, node: Node, caller: Caller, body: UserPatch) -> Any:
    user_id = request.match_info["id"]
    changes = body.model_dump(exclude_unset=True)
    user = await node.transact(lambda conn, ctx: users.update_user(conn, user_id, now=ctx.now, **changes))
    return {"user": model_json(user)}


async def create_token(request: web.Request, node: Node, caller: Caller, body: TokenIn) -> Any:
    token = new_token()
    user_id = body.user_id or caller.id

    def insert(conn: sqlite3.Connection, ctx: TxContext) -> None:
        row = conn.execute("SELECT active FROM users WHERE id = ? AND role != 'partner'", (user_id,)).fetchone()
        if row is None:
            raise ApiError(404, "unknown_subject", f"no user {user_id}", field="user_id")
        if not row[0]:
            raise ApiError(400, "invalid", f"user {user_id} is not active; reactivate them before giving them"
                           " a token", field="user_id")
        store.insert_token(conn, id=new_id("tok"), user_id=user_id, token_hash=hash_token(token), label=body.label,
                           now=ctx.ts)

    await node.transact(insert)
    return {"token": token, "note": "shown once; only its hash is stored"}


ROUTES: list[Route] = [
    Route("POST", "/api/v1/users", create_user, "Add a user", UserIn, admin_only=True, status=201),
    Route("GET", "/api/v1/users", list_users, "List users", admin_only=True),
    Route("PATCH", "/api/v1/users/{id}", update_user,
          "Change a user's name or role, or deactivate them (active: false; their tokens stop working)",
          UserPatch, admin_only=True),
    Route("POST", "/api/v1/tokens", create_token, "Create an API token (shown once)", TokenIn, admin_only=True,
          status=201),
]
