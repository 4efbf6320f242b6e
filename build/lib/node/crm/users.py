"""Changing a user (name, role, active) under the rules that keep the node workable.

``store`` creates, reads and lists users; this is the one write it lacks. Rules:

- the node always keeps an active admin: the last one can be neither demoted nor
  deactivated (``conflict``);
- a user who owns a workflow cannot be deactivated: inbound referrals may fall back to
  the workflow owner, so give the workflow another owner first (``conflict``);
- a deactivated user keeps their records but can no longer sign in: their API tokens
  stop working at once (``node.storage.store.token_user`` only accepts active users),
  and their sessions end (so reactivating them does not bring old sessions back).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from node.crm import accounts, store
from node.crm.errors import CrmError
from node.crm.fields import Name, Role
from node.crm.models import Model as _Model
from node.crm.models import User
from node.crm.parsing import parse


class _Change(_Model):
    name: Name | None = None
    role: Role | None = None
    active: bool | None = None


def update_user(
    conn: sqlite3.Connection,
    user_id: str,
    *,
    name: str | None = None,
    role: Role | None = None,
    active: bool | None = None,
    now: datetime,
) -> User:
    """Change the fields given (``None`` leaves a field as it is). ``now`` stamps the end
    of the user's sessions when they are deactivated."""
    change = parse(_Change, {"name": name, "role": role, "active": active})
    current = store.get_user(conn, user_id)
    new_role = change.role or current.role
    new_active = current.active if change.active is None else change.active
    if current.role == "admin" and current.active and (new_role != "admin" or not new_active):
        others = [
            u
            for u in store.list_users(conn, active_only=True)
            if u.role == "admin" and u.id != user_id
        ]
        if not others:
            field = "role" if new_role != "admin" else "active"
            raise CrmError(
                "conflict",
                f"user {user_id!r} is the only active admin; make another user an admin first",
                field,
            )
    if current.active and not new_active:
        owned = [w.name for w in store.list_workflows(conn) if w.owner_user_id == user_id]
        if owned:
            names = ", ".join(repr(n) for n in owned)
            raise CrmError(
                "conflict",
                f"user {user_id!r} owns workflow(s) {names}; give them another owner_user_id "
                "first (PATCH /api/v1/workflows/{id})",
                "active",
            )
    conn.execute(
        "UPDATE users SET name = ?, role = ?, active = ? WHERE id = ?",
        (change.name or current.name, new_role, int(new_active), user_id),
    )
    if current.active and not new_active:
        accounts.end_user_sessions(conn, user_id, now)
    return store.get_user(conn, user_id)
