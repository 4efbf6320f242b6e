"""API tokens as the admins manage them: listed with whose they are and when they were
last used, issued for an active user (shown once; only the hash is stored), revoked.

``node.storage.store`` checks a token on each API request (``token_user``); a revoked
token, or one of a deactivated user, stops working at once. A token's last use is
written at most every :data:`TOUCH_EVERY_S`, so an API call is not a write.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from node.base.ids import new_id
from node.base.tokens import hash_token, new_token
from node.crm.errors import CrmError
from node.storage import store
from protocol.models import format_ts, parse_ts

TOUCH_EVERY_S = 60


@dataclass(frozen=True)
class TokenRow:
    id: str
    label: str
    user_name: str
    user_active: bool
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


def list_tokens(conn: sqlite3.Connection) -> list[TokenRow]:
    """Every token, live ones first, newest first."""
    rows = conn.execute(
        """SELECT t.id, t.label, u.name AS user_name, u.active, t.created_at, t.last_used_at, t.revoked_at
           FROM api_tokens t JOIN users u ON u.id = t.user_id
           ORDER BY t.revoked_at IS NOT NULL, t.created_at DESC, t.id"""
    )
    return [TokenRow(r["id"], r["label"], r["user_name"], bool(r["active"]), r["created_at"], r["last_used_at"],
                     r["revoked_at"]) for r in rows]


def issue_token(conn: sqlite3.Connection, user_id: str, label: str, now: datetime) -> str:
    """A new token for an active user; the token itself, to show once."""
    row = conn.execute("SELECT active FROM users WHERE id = ? AND role != 'partner'", (user_id,)).fetchone()
    if row is None:  # a partner has no API: the portal is their only way in
        raise CrmError("not_found", "there is no such user", "user_id")
    if not row["active"]:
        raise CrmError("invalid", "that user is deactivated; reactivate them before giving them a token", "user_id")
    token = new_token()
    store.insert_token(conn, id=new_id("tok"), user_id=user_id, token_hash=hash_token(token), label=label,
                       now=format_ts(now))
    return token


def revoke_token(conn: sqlite3.Connection, token_id: str, now: datetime) -> str:
    """Revoke a token (once; revoking again changes nothing); its label."""
    row = conn.execute("SELECT label FROM api_tokens WHERE id = ?", (token_id,)).fetchone()
    if row is None:
        raise CrmError("not_found", "there is no such token")
    conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                 (format_ts(now), token_id))
    return str(row["label"])


def is_stale(last_used_at: str | None, now: datetime) -> bool:
    """Whether a token's last use should be written now."""
    return last_used_at is None or now - parse_ts(last_used_at) >= timedelta(seconds=TOUCH_EVERY_S)


def touch_token(conn: sqlite3.Connection, token_id: str, now: datetime) -> None:
    conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (format_ts(now), token_id))
