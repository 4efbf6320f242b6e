"""Users as the CRM sees them: read, found by email, listed and created.

Users live in the federation core's ``users`` table (migration 1); the CRM reads and
creates them, it does not define them. ``node.crm.users`` changes them. Partners (issue
13) are rows of ``users`` too, but not users of the organisation: nothing here reads,
lists or accepts them (``node.crm.partners`` does), so no partner becomes a deal's owner,
a workflow's owner or an API token's holder.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from node.base.ids import new_id
from node.crm.errors import CrmError
from node.crm.fields import Role
from node.crm.models import User, UserIn
from node.crm.parsing import parse
from node.crm.store.sql import _missing, _ts

_USER_COLUMNS = "id, email, name, role, active, created_at"


def _user(row: sqlite3.Row) -> User:
    return User(**{**dict(row), "active": bool(row["active"])})


def get_user(conn: sqlite3.Connection, user_id: str) -> User:
    row = conn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ? AND role != 'partner'", (user_id,)).fetchone()
    if row is None:
        raise _missing("user", user_id)
    return _user(row)


def find_user_by_email(conn: sqlite3.Connection, email: str) -> User | None:
    row = conn.execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE email = ? AND role != 'partner'", (email.strip(),)
    ).fetchone()
    return None if row is None else _user(row)


def list_users(conn: sqlite3.Connection, active_only: bool = False) -> list[User]:
    where = "WHERE role != 'partner'" + (" AND active = 1" if active_only else "")
    rows = conn.execute(
        f"SELECT {_USER_COLUMNS} FROM users {where} ORDER BY name COLLATE NOCASE, id"
    )
    return [_user(r) for r in rows]


def create_user(conn: sqlite3.Connection, email: str, name: str, role: Role, now: datetime) -> User:
    data = parse(UserIn, {"email": email, "name": name, "role": role})
    if conn.execute("SELECT 1 FROM users WHERE email = ?", (data.email,)).fetchone() is not None:
        raise CrmError("conflict", f"a user with email {data.email!r} already exists", "email")
    user_id = new_id("usr", now)
    conn.execute(
        "INSERT INTO users (id, email, name, role, active, created_at) VALUES (?, ?, ?, ?, 1, ?)",
        (user_id, data.email, data.name, data.role, _ts(now)),
    )
    return get_user(conn, user_id)


def _check_user(conn: sqlite3.Connection, user_id: str, field: str, *, active: bool,
                partner_ok: bool = False) -> None:
    """``user_id`` is a user (a partner only where ``partner_ok``: a note's author)."""
    row = conn.execute("SELECT active, role FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None or (row["role"] == "partner" and not partner_ok):
        raise _missing("user", user_id, field)
    if active and not row["active"]:
        raise CrmError("invalid", f"user {user_id!r} is not active", field)
