"""The mail queue (table ``mail_queue``, migration 30).

Mail is queued inside the transaction that causes it, so it is sent exactly when that
change is committed, and a restart loses none. ``node.mail.sender`` takes what is due, and
deletes what was sent ``message_keep_days`` ago, or given up and queued that long ago
(:func:`forget_old`, through ``node.storage.retention``).
A mail to a user honours the kinds they turned off (table ``user_mail_off``) and is never
sent to a deactivated user. A mail that carries a secret (``kinds.SECRET_KINDS``: a
one-time link, an invitation's referral key) must wait in the queue in clear, as the
SMTP server needs it so; once sent, or given up, its text is wiped.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from node.base.config import Config
from node.base.ids import new_id
from node.mail.kinds import CHOICES, KINDS, SECRET_KINDS
from node.mail.render import render
from node.storage.retention import GIVEN_UP, done_messages
from protocol.models import format_ts

#: After this long failing, a mail is given up (and stays in the queue, marked).
GIVE_UP_AFTER = timedelta(days=3)


def enqueue(conn: sqlite3.Connection, config: Config, *, kind: str, to_addr: str, to_name: str,
            context: dict[str, Any], now: datetime) -> str:
    """Render and queue one mail; its id."""
    if kind not in KINDS:
        raise ValueError(f"unknown mail kind {kind!r}")
    mail = render(kind, {"to_name": to_name, **context}, config)
    mail_id = new_id("mail", now)
    conn.execute(
        """INSERT INTO mail_queue (id, kind, to_addr, to_name, subject, text_body, html_body, created_at,
                                   next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (mail_id, kind, to_addr, to_name, mail.subject, mail.text, mail.html, format_ts(now), format_ts(now)),
    )
    return mail_id


def enqueue_for_user(conn: sqlite3.Connection, config: Config, user_id: str, kind: str,
                     context: dict[str, Any], now: datetime) -> str | None:
    """Queue a mail to an active user who has not turned this kind off; else None."""
    row = conn.execute(
        "SELECT email, name FROM users WHERE id = ? AND active = 1"
        " AND NOT EXISTS (SELECT 1 FROM user_mail_off WHERE user_id = users.id AND kind = ?)", (user_id, kind),
    ).fetchone()
    if row is None:
        return None
    return enqueue(conn, config, kind=kind, to_addr=row["email"], to_name=row["name"], context=context, now=now)


def enqueue_for_admins(conn: sqlite3.Connection, config: Config, kind: str, context: dict[str, Any],
                       now: datetime) -> list[str]:
    ids = [enqueue_for_user(conn, config, r["id"], kind, context, now)
           for r in conn.execute("SELECT id FROM users WHERE role = 'admin' AND active = 1").fetchall()]
    return [i for i in ids if i is not None]


def mail_choices(conn: sqlite3.Connection, user_id: str) -> dict[str, bool]:
    """Each mail a user may turn off: whether they get it."""
    off = {r["kind"] for r in conn.execute("SELECT kind FROM user_mail_off WHERE user_id = ?", (user_id,))}
    return {k.name: k.name not in off for k in CHOICES}


def set_mail_choices(conn: sqlite3.Connection, user_id: str, wanted: set[str]) -> None:
    """Keep the mails in ``wanted``; turn the other optional ones off."""
    conn.execute("DELETE FROM user_mail_off WHERE user_id = ?", (user_id,))
    conn.executemany("INSERT INTO user_mail_off (user_id, kind) VALUES (?, ?)",
                     [(user_id, k.name) for k in CHOICES if k.name not in wanted])


@dataclass(frozen=True)
class Queued:
    id: str
    kind: str
    to_addr: str
    to_name: str
    subject: str
    text_body: str
    html_body: str
    created_at: str
    attempts: int


def due(conn: sqlite3.Connection, now: datetime, limit: int = 20) -> list[Queued]:
    rows = conn.execute(
        """SELECT id, kind, to_addr, to_name, subject, text_body, html_body, created_at, attempts FROM mail_queue
           WHERE sent_at IS NULL AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?""",
        (format_ts(now), limit),
    )
    return [Queued(**dict(r)) for r in rows]


def mark_sent(conn: sqlite3.Connection, mail_id: str, now: datetime, sent_as: str) -> None:
    conn.execute("UPDATE mail_queue SET sent_at = ?, sent_as = ?, attempts = attempts + 1, last_error = NULL "
                 "WHERE id = ?", (format_ts(now), sent_as, mail_id))
    _forget_secret(conn, mail_id)


def mark_failed(conn: sqlite3.Connection, mail_id: str, now: datetime, error: str, retry_at: datetime | None) -> None:
    """A failed attempt; ``retry_at`` None gives the mail up."""
    conn.execute(
        "UPDATE mail_queue SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
        (error[:300], format_ts(retry_at) if retry_at else GIVEN_UP, mail_id),
    )
    if retry_at is None:
        _forget_secret(conn, mail_id)


#: Delete at most ``limit`` mails sent, or given up and queued, before ``before``; how many.
forget_old = done_messages("mail_queue")


#: What a mail that carried a secret keeps of its text once it is sent or given up.
WIPED = "(wiped: this mail carried a secret, kept only until it was sent)"


def _forget_secret(conn: sqlite3.Connection, mail_id: str) -> None:
    marks = ", ".join("?" * len(SECRET_KINDS))
    conn.execute(f"UPDATE mail_queue SET text_body = ?, html_body = ? WHERE id = ? AND kind IN ({marks})",  # noqa: S608
                 (WIPED, WIPED, mail_id, *SECRET_KINDS))


@dataclass(frozen=True)
class QueueState:
    waiting: int
    failing: int
    sent_24h: int
    oldest_waiting_at: str | None


def queue_state(conn: sqlite3.Connection, now: datetime) -> QueueState:
    row = conn.execute(
        """SELECT SUM(sent_at IS NULL) AS waiting, SUM(sent_at IS NULL AND attempts > 0) AS failing,
                  SUM(sent_at >= ?) AS sent_24h, MIN(CASE WHEN sent_at IS NULL THEN created_at END) AS oldest
           FROM mail_queue""",
        (format_ts(now - timedelta(hours=24)),),
    ).fetchone()
    return QueueState(row["waiting"] or 0, row["failing"] or 0, row["sent_24h"] or 0, row["oldest"])
