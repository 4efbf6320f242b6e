"""The partner portal's settings (one row, ``portal_settings``), the notifications a
partner turned on (``partner_mail_on``), and e-mail changes waiting for confirmation
(``email_changes``: only the link's SHA-256 is kept).

The organisation chooses which notifications partners may turn on; one it turns off is
neither offered to partners nor sent, whatever a partner chose before.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from node.crm import accounts
from node.crm.errors import CrmError
from protocol.models import format_ts, parse_ts

#: The notifications a partner may get, as their settings name them.
NOTIFICATIONS: dict[str, str] = {
    "partner_note": "A broker adds a note for me",
    "partner_stage": "A deal of mine moves to another stage",
    "partner_outcome": "A deal of mine is won or lost",
}

DISCLOSURE_VERSION = "partner-portal-1"
DISCLOSURE_TEXT = ("We will pass the client's name, e-mail address and phone number to our broker so that they "
                   "can contact the client about this enquiry. The client agreed to be contacted.")


@dataclass(frozen=True)
class PortalSettings:
    default_workflow_id: str | None
    mail_partner_added: bool
    mail_deal_shared: bool
    allowed: frozenset[str]
    disclosure_version: str
    disclosure_text: str


def settings(conn: sqlite3.Connection) -> PortalSettings:
    row = conn.execute("SELECT * FROM portal_settings WHERE id = 1").fetchone()
    if row is None:
        return PortalSettings(None, True, True, frozenset(), DISCLOSURE_VERSION, DISCLOSURE_TEXT)
    allowed = frozenset(k for k in json.loads(row["allowed_notifications"]) if k in NOTIFICATIONS)
    return PortalSettings(row["default_workflow_id"], bool(row["mail_partner_added"]), bool(row["mail_deal_shared"]),
                          allowed, row["disclosure_version"], row["disclosure_text"])


def save_settings(conn: sqlite3.Connection, new: PortalSettings) -> None:
    if new.default_workflow_id is not None and conn.execute(
            "SELECT 1 FROM workflows WHERE id = ?", (new.default_workflow_id,)).fetchone() is None:
        raise CrmError("invalid", "Choose one of the organisation's workflows.", "default_workflow_id")
    if not new.disclosure_version.strip() or not new.disclosure_text.strip():
        raise CrmError("invalid", "Enter the privacy disclosure's version and text.", "disclosure_text")
    conn.execute(
        """INSERT INTO portal_settings (id, default_workflow_id, mail_partner_added, mail_deal_shared,
               allowed_notifications, disclosure_version, disclosure_text) VALUES (1, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET default_workflow_id = excluded.default_workflow_id,
               mail_partner_added = excluded.mail_partner_added, mail_deal_shared = excluded.mail_deal_shared,
               allowed_notifications = excluded.allowed_notifications,
               disclosure_version = excluded.disclosure_version, disclosure_text = excluded.disclosure_text""",
        (new.default_workflow_id, int(new.mail_partner_added), int(new.mail_deal_shared),
         json.dumps(sorted(new.allowed & NOTIFICATIONS.keys())), new.disclosure_version.strip(),
         new.disclosure_text.strip()))


def notifications_on(conn: sqlite3.Connection, partner_id: str) -> set[str]:
    """What the partner turned on, of what the organisation allows now."""
    allowed = settings(conn).allowed
    rows = conn.execute("SELECT kind FROM partner_mail_on WHERE partner_id = ?", (partner_id,))
    return {r[0] for r in rows} & allowed


def set_notifications(conn: sqlite3.Connection, partner_id: str, wanted: set[str]) -> None:
    allowed = settings(conn).allowed
    conn.execute("DELETE FROM partner_mail_on WHERE partner_id = ?", (partner_id,))
    conn.executemany("INSERT INTO partner_mail_on (partner_id, kind) VALUES (?, ?)",
                     [(partner_id, k) for k in sorted(wanted & allowed)])


# --- e-mail changes --------------------------------------------------------------------

EMAIL_PREFIX = "rne_"


def new_email_change(conn: sqlite3.Connection, user_id: str, new_email: str, now: datetime, ttl_s: int) -> str:
    """A one-time link's token that makes ``new_email`` the user's address; older ones
    of the user stop working."""
    conn.execute("UPDATE email_changes SET used_at = ? WHERE user_id = ? AND used_at IS NULL",
                 (format_ts(now), user_id))
    token = EMAIL_PREFIX + accounts._new_secret("")
    conn.execute("INSERT INTO email_changes (token_hash, user_id, new_email, created_at, expires_at)"
                 " VALUES (?, ?, ?, ?, ?)", (accounts.secret_hash(token), user_id, new_email, format_ts(now),
                                             format_ts(now + timedelta(seconds=ttl_s))))
    return token


def pending_email_change(conn: sqlite3.Connection, token: str, now: datetime) -> str | None:
    """The new address a change link would confirm, or None if it no longer works;
    reading it changes nothing."""
    row = conn.execute("SELECT new_email, expires_at FROM email_changes WHERE token_hash = ? AND used_at IS NULL",
                       (accounts.secret_hash(token),)).fetchone()
    return row["new_email"] if row is not None and parse_ts(row["expires_at"]) > now else None


def use_email_change(conn: sqlite3.Connection, token: str, now: datetime) -> tuple[str, str] | None:
    """Confirm a change once: ``(user_id, new address)``, or None if the link does not
    work (used, expired, or the address was taken meanwhile)."""
    row = conn.execute("SELECT user_id, new_email, expires_at FROM email_changes WHERE token_hash = ?"
                       " AND used_at IS NULL", (accounts.secret_hash(token),)).fetchone()
    if row is None or parse_ts(row["expires_at"]) <= now:
        return None
    conn.execute("UPDATE email_changes SET used_at = ? WHERE token_hash = ?",
                 (format_ts(now), accounts.secret_hash(token)))
    taken = conn.execute("SELECT 1 FROM users WHERE email = ? AND id != ?", (row["new_email"], row["user_id"])).fetchone()
    if taken:
        return None
    conn.execute("UPDATE users SET email = ? WHERE id = ?", (row["new_email"], row["user_id"]))
    return row["user_id"], row["new_email"]
