"""Signing in with a password: one-time password links, sign-in lockouts and sessions.

Only hashes of secrets are stored (migration 30): a session id and a password link are
looked up by their SHA-256, a password is an argon2 hash (``node.base.passwords``, which
callers run off the event loop; these functions take the hash).

- **Password links** set the first password (``set``, printed by ``refnode init`` and
  ``users add`` or sent by e-mail) or reset a forgotten one (``reset``). A link works
  once, until it expires; a newer link for the same user replaces older ones.
- **Lockout**: ``limit`` wrong passwords for one e-mail address within ``window_s`` lock
  it for ``lock_s``; an admin can lift the lock earlier (:func:`unlock`). Setting a
  password through a link lifts it too.
- **Sessions** end after ``idle_s`` without a request, ``absolute_s`` after sign-in, at
  sign-out, and when the user's password changes or the user is deactivated. Sign-in
  always starts a new session id.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from node.crm.access import Caller
from protocol.encoding import b64u_encode
from protocol.models import format_ts, parse_ts

LinkPurpose = Literal["set", "reset"]
SESSION_PREFIX = "rns_"
LINK_PREFIX = "rnp_"
#: A session's last-seen time is written at most this often (seconds): a page view is
#: not a write.
TOUCH_EVERY_S = 60


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _new_secret(prefix: str) -> str:
    return prefix + b64u_encode(os.urandom(32))


# --- passwords and links ---------------------------------------------------------------


@dataclass(frozen=True)
class SigninRecord:
    """What sign-in checks: the user (active or not) and their password hash."""

    caller: Caller
    active: bool
    password_hash: str | None


def signin_record(conn: sqlite3.Connection, email: str) -> SigninRecord | None:
    row = conn.execute(
        """SELECT id, email, name, role, active, password_hash FROM users WHERE email = ?""", (email.strip(),)
    ).fetchone()
    if row is None:
        return None
    return SigninRecord(Caller(row["id"], row["email"], row["name"], row["role"]), bool(row["active"]),
                        row["password_hash"])


def set_password_hash(conn: sqlite3.Connection, user_id: str, password_hash: str, now: datetime) -> None:
    """Store a new password hash, and end every session of the user."""
    conn.execute("""UPDATE users SET password_hash = ? WHERE id = ?""", (password_hash, user_id))
    end_user_sessions(conn, user_id, now)


def new_password_link(conn: sqlite3.Connection, user_id: str, purpose: LinkPurpose, now: datetime,
                      ttl_s: int) -> str:
    """A one-time token for the user's set-password or reset page; older unused links
    of the user stop working."""
    conn.execute("""UPDATE password_links SET used_at = ? WHERE user_id = ? AND used_at IS NULL""",
                 (format_ts(now), user_id))
    token = _new_secret(LINK_PREFIX)
    conn.execute(
        """INSERT INTO password_links (token_hash, user_id, purpose, created_at, expires_at) VALUES (?, ?, ?, ?, ?)""",
        (secret_hash(token), user_id, purpose, format_ts(now), format_ts(now + timedelta(seconds=ttl_s))),
    )
    return token


@dataclass(frozen=True)
class LinkHolder:
    user_id: str
    email: str
    name: str
    purpose: LinkPurpose


def password_link_holder(conn: sqlite3.Connection, token: str, now: datetime) -> LinkHolder | None:
    """The active user a link is for, if it is unused and unexpired."""
    row = conn.execute(
        """SELECT l.user_id, l.purpose, l.expires_at, u.email, u.name FROM password_links l
           JOIN users u ON u.id = l.user_id
           WHERE l.token_hash = ? AND l.used_at IS NULL AND u.active = 1""",
        (secret_hash(token),),
    ).fetchone()
    if row is None or parse_ts(row["expires_at"]) <= now:
        return None
    return LinkHolder(row["user_id"], row["email"], row["name"], row["purpose"])


def use_password_link(conn: sqlite3.Connection, token: str, password_hash: str, now: datetime) -> LinkHolder | None:
    """Set the password through a link, once: the link is spent, the user's sessions end
    and any lockout on the address is lifted. None if the link does not work."""
    holder = password_link_holder(conn, token, now)
    if holder is None:
        return None
    conn.execute("""UPDATE password_links SET used_at = ? WHERE token_hash = ?""", (format_ts(now), secret_hash(token)))
    set_password_hash(conn, holder.user_id, password_hash, now)
    unlock(conn, holder.email)
    return holder


# --- lockout ---------------------------------------------------------------------------


def locked_until(conn: sqlite3.Connection, email: str, now: datetime) -> datetime | None:
    row = conn.execute("""SELECT locked_until FROM signin_failures WHERE email = ?""", (email.strip(),)).fetchone()
    if row is None or row["locked_until"] is None:
        return None
    until = parse_ts(row["locked_until"])
    return until if until > now else None


def record_failure(conn: sqlite3.Connection, email: str, now: datetime, *, limit: int, window_s: int,
                   lock_s: int) -> datetime | None:
    """Count a wrong password for ``email``; when this failure reaches ``limit`` within
    ``window_s``, lock the address and return until when."""
    email = email.strip()
    row = conn.execute("""SELECT failures, first_failure_at FROM signin_failures WHERE email = ?""", (email,)).fetchone()
    if row is None or parse_ts(row["first_failure_at"]) + timedelta(seconds=window_s) <= now:
        failures, first = 1, now
    else:
        failures, first = row["failures"] + 1, parse_ts(row["first_failure_at"])
    until = now + timedelta(seconds=lock_s) if failures >= limit else None
    conn.execute(
        """INSERT INTO signin_failures (email, failures, first_failure_at, locked_until) VALUES (?, ?, ?, ?)
           ON CONFLICT (email) DO UPDATE SET failures = excluded.failures,
               first_failure_at = excluded.first_failure_at, locked_until = excluded.locked_until""",
        (email, 0 if until else failures, format_ts(first), format_ts(until) if until else None),
    )
    return until


def unlock(conn: sqlite3.Connection, email: str) -> bool:
    """Lift a lockout (and forget the failures); True if the address was locked."""
    row = conn.execute("""DELETE FROM signin_failures WHERE email = ? RETURNING locked_until""", (email.strip(),)).fetchone()
    return row is not None and row["locked_until"] is not None


@dataclass(frozen=True)
class Lockout:
    email: str
    name: str
    locked_until: datetime


def lockouts(conn: sqlite3.Connection, now: datetime) -> list[Lockout]:
    """Addresses of users locked out now, for the admins."""
    rows = conn.execute(
        """SELECT f.email, u.name, f.locked_until FROM signin_failures f JOIN users u ON u.email = f.email
           WHERE f.locked_until IS NOT NULL AND f.locked_until > ? ORDER BY f.locked_until""",
        (format_ts(now),),
    )
    return [Lockout(r["email"], r["name"], parse_ts(r["locked_until"])) for r in rows]


# --- sessions --------------------------------------------------------------------------


def start_session(conn: sqlite3.Connection, user_id: str, now: datetime) -> str:
    """A new session for the user; the cookie's value, returned once."""
    sid = _new_secret(SESSION_PREFIX)
    conn.execute("""INSERT INTO web_sessions (id_hash, user_id, created_at, last_seen_at) VALUES (?, ?, ?, ?)""",
                 (secret_hash(sid), user_id, format_ts(now), format_ts(now)))
    return sid


@dataclass(frozen=True)
class Session:
    caller: Caller
    #: The last-seen time should be written now (see ``TOUCH_EVERY_S``).
    stale: bool


def session_caller(conn: sqlite3.Connection, sid: str, now: datetime, *, idle_s: int,
                   absolute_s: int) -> Session | None:
    """The active user of a live session, or None (unknown, ended, idle or too old)."""
    if not sid.startswith(SESSION_PREFIX) or len(sid) > 100:
        return None
    row = conn.execute(
        """SELECT u.id, u.email, u.name, u.role, s.created_at, s.last_seen_at FROM web_sessions s
           JOIN users u ON u.id = s.user_id WHERE s.id_hash = ? AND s.ended_at IS NULL AND u.active = 1""",
        (secret_hash(sid),),
    ).fetchone()
    if row is None:
        return None
    seen = parse_ts(row["last_seen_at"])
    if seen + timedelta(seconds=idle_s) <= now or parse_ts(row["created_at"]) + timedelta(seconds=absolute_s) <= now:
        return None
    caller = Caller(row["id"], row["email"], row["name"], row["role"])
    return Session(caller, stale=(now - seen).total_seconds() >= TOUCH_EVERY_S)


def touch_session(conn: sqlite3.Connection, sid: str, now: datetime) -> None:
    conn.execute("""UPDATE web_sessions SET last_seen_at = ? WHERE id_hash = ?""", (format_ts(now), secret_hash(sid)))


def end_session(conn: sqlite3.Connection, sid: str, now: datetime) -> None:
    conn.execute("""UPDATE web_sessions SET ended_at = ? WHERE id_hash = ? AND ended_at IS NULL""",
                 (format_ts(now), secret_hash(sid)))


def end_user_sessions(conn: sqlite3.Connection, user_id: str, now: datetime) -> None:
    conn.execute("""UPDATE web_sessions SET ended_at = ? WHERE user_id = ? AND ended_at IS NULL""",
                 (format_ts(now), user_id))
