"""How deliveries to each organisation are going: what the outbox holds per peer, the
failed items an admin may retry, and the failing episodes the admins are told about.

An episode starts at the first failed attempt to deliver to a peer (unreachable, or an
answer worth retrying) and ends when a delivery to it goes through. Once an episode has
lasted :data:`FAILING_MAIL_AFTER_S`, the admins get one ``delivery_failing`` mail, queued
in the transaction that notices it (a failed attempt, or the delivery loop's tick). The
peer's row keeps that they were told (migration 33), so further retries send nothing
until the peer recovers and fails again.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from node.base.config import Config
from node.mail.queue import enqueue_for_admins
from node.storage import store
from protocol.models import format_ts, parse_ts
from protocol.wire import MessageType

#: How long deliveries to a peer fail before the admins get a mail.
FAILING_MAIL_AFTER_S = 3600

#: What each message is, in words.
WHAT = {
    MessageType.CONNECTION_REQUEST: "Connection request",
    MessageType.CONNECTION_ACCEPT: "Connection acceptance",
    MessageType.CONNECTION_REFUSE: "Connection refusal",
    MessageType.CONNECTION_CONFIRM: "Connection confirmation",
    MessageType.REFERRAL_OFFER: "Referral",
    MessageType.REFERRAL_STATUS: "Referral status update",
    MessageType.KEY_ROTATION: "New signing key notice",
    MessageType.DISCONNECT: "Disconnection",
    MessageType.ENTERPRISE_PARTNER: "Partner for a child organisation",
}


def what(type_: str) -> str:
    name = type_.split("/", 1)[0]
    return next((words for t, words in WHAT.items() if t.value == name), name)


#: Why a connection failed, by the class of the client's exception (``network: <name>``
#: in ``last_error``), as an admin reads it; names not listed are not shown.
NETWORK_WORDS = {
    "ClientConnectorError": "could not connect to its address",
    "ClientConnectorDNSError": "its address was not found",
    "ClientConnectorCertificateError": "its certificate was not accepted",
    "ClientConnectorSSLError": "a secure connection could not be made",
    "ClientSSLError": "a secure connection could not be made",
    "ClientOSError": "the connection failed",
    "ServerDisconnectedError": "it closed the connection before answering",
    "ServerTimeoutError": "it did not answer in time",
    "TimeoutError": "it did not answer in time",
    "ConnectionResetError": "the connection was cut",
    "ClientPayloadError": "its answer was cut short",
}


def error_words(error: str | None) -> str:
    """A delivery's ``last_error`` (``node.federation.delivery``) as an admin reads it."""
    if not error:
        return ""
    gave_up = error.endswith(store.DEADLINE_PASSED)
    error = error.removesuffix(store.DEADLINE_PASSED)
    if error.startswith("network: "):
        reason = NETWORK_WORDS.get(error.removeprefix("network: "))
        words = "Their node could not be reached" + (f": {reason}" if reason else "")
    elif error.startswith("HTTP "):
        words = f"Their node answered {error}"
    elif error.startswith("bad receipt: "):
        words = f"Their receipt did not verify ({error.removeprefix('bad receipt: ')})"
    elif error:
        words = f"Their node refused it ({error})"
    else:
        words = "Not delivered"
    return words + ("; given up at the delivery deadline" if gave_up else "")


# --- failing episodes ------------------------------------------------------------------


def note_failed_attempt(conn: sqlite3.Connection, config: Config, peer_node_id: str, now: datetime) -> bool:
    """A delivery to the peer failed and will be retried: start its episode if none is
    running, and tell the admins if it has run long enough. True when a mail was queued
    (the caller wakes the mail sender after commit)."""
    conn.execute("UPDATE peers SET failing_since = ? WHERE node_id = ? AND failing_since IS NULL",
                 (now.timestamp(), peer_node_id))
    return _tell(conn, config, now, peer_node_id)


def note_delivered(conn: sqlite3.Connection, peer_node_id: str) -> None:
    """A delivery to the peer went through: its episode, if any, is over."""
    conn.execute("UPDATE peers SET failing_since = NULL, failing_told_at = NULL"
                 " WHERE node_id = ? AND failing_since IS NOT NULL", (peer_node_id,))


def tell_overdue(conn: sqlite3.Connection, config: Config, now: datetime) -> bool:
    """Tell the admins of every episode that has just passed the hour, between attempts
    (a peer's next retry may be an hour away). True when a mail was queued."""
    return _tell(conn, config, now, None)


def episode_to_tell(conn: sqlite3.Connection, now: datetime) -> bool:
    """Whether :func:`tell_overdue` has an episode to tell of (a read: the sweep writes
    only when something is due)."""
    return conn.execute("SELECT 1 FROM peers WHERE failing_since <= ? AND failing_told_at IS NULL LIMIT 1",
                        (now.timestamp() - FAILING_MAIL_AFTER_S,)).fetchone() is not None


def _tell(conn: sqlite3.Connection, config: Config, now: datetime, peer_node_id: str | None) -> bool:
    rows = conn.execute(
        """SELECT node_id, name, failing_since FROM peers
           WHERE failing_since <= ? AND failing_told_at IS NULL AND (? IS NULL OR node_id = ?)""",
        (now.timestamp() - FAILING_MAIL_AFTER_S, peer_node_id, peer_node_id),
    ).fetchall()
    queued = False
    for row in rows:
        waiting, last_error = conn.execute(
            """SELECT count(*), (SELECT last_error FROM outbox WHERE peer_node_id = :p AND last_error IS NOT NULL
                                 ORDER BY seq DESC LIMIT 1)
               FROM outbox WHERE peer_node_id = :p AND state = 'pending'""",
            {"p": row["node_id"]},
        ).fetchone()
        since = datetime.fromtimestamp(row["failing_since"], UTC)
        context = {"peer": row["name"], "since": since, "waiting": waiting, "last_error": error_words(last_error),
                   "link": f"{config.public_url}/admin/outbox"}
        queued = bool(enqueue_for_admins(conn, config, "delivery_failing", context, now)) or queued
        conn.execute("UPDATE peers SET failing_told_at = ? WHERE node_id = ?", (format_ts(now), row["node_id"]))
    return queued


# --- what the outbox holds -------------------------------------------------------------


@dataclass(frozen=True)
class PeerHealth:
    name: str
    pending: int
    #: Pending items that have failed at least once.
    failing: int
    #: Items that gave up (at their deadline, or refused by the peer): an admin may retry.
    failed: int
    delivered: int
    last_error: str
    failing_since: datetime | None
    next_attempt_at: datetime | None
    told_at: str | None


def peer_health(conn: sqlite3.Connection, now: datetime) -> list[PeerHealth]:
    """Every peer we know, by name."""
    rows = conn.execute(
        """SELECT p.name, p.retry_not_before, p.failing_since, p.failing_told_at,
                  count(o.seq) FILTER (WHERE o.state = 'pending') AS pending,
                  count(o.seq) FILTER (WHERE o.state = 'pending' AND o.attempts > 0) AS failing,
                  count(o.seq) FILTER (WHERE o.state = 'failed') AS failed,
                  count(o.seq) FILTER (WHERE o.state = 'delivered') AS delivered,
                  (SELECT last_error FROM outbox x WHERE x.peer_node_id = p.node_id AND x.last_error IS NOT NULL
                   ORDER BY x.seq DESC LIMIT 1) AS last_error
           FROM peers p LEFT JOIN outbox o ON o.peer_node_id = p.node_id
           GROUP BY p.node_id ORDER BY p.name COLLATE NOCASE, p.node_id"""
    ).fetchall()
    return [
        PeerHealth(
            r["name"], r["pending"], r["failing"], r["failed"], r["delivered"], error_words(r["last_error"]),
            datetime.fromtimestamp(r["failing_since"], UTC) if r["failing_since"] is not None else None,
            datetime.fromtimestamp(r["retry_not_before"], UTC)
            if r["pending"] and r["retry_not_before"] > now.timestamp() else None,
            r["failing_told_at"],
        )
        for r in rows
    ]


@dataclass(frozen=True)
class FailedItem:
    seq: int
    peer: str
    what: str
    #: What it is about, in words: the referral's deal and type, or the connection's name.
    about: str
    attempts: int
    last_error: str
    created_at: datetime


def failed_items(conn: sqlite3.Connection, limit: int = 100) -> list[FailedItem]:
    """Items that gave up, newest first."""
    rows = conn.execute(
        """SELECT o.seq, o.type, o.attempts, o.last_error, o.created_at, COALESCE(p.name, '') AS peer,
                  CASE o.subject_kind
                    WHEN 'referral' THEN (SELECT trim(coalesce(json_extract(r.offer, '$.deal.title'), '')
                                                 || ' (' || r.referral_type || ')')
                                          FROM referrals r WHERE r.local_id = o.subject_id)
                    WHEN 'connection' THEN (SELECT c.name FROM connections c WHERE c.id = o.subject_id)
                  END AS about
           FROM outbox o LEFT JOIN peers p ON p.node_id = o.peer_node_id
           WHERE o.state = 'failed' ORDER BY o.seq DESC LIMIT ?""",
        (limit,),
    )
    return [FailedItem(r["seq"], r["peer"], what(r["type"]), r["about"] or "", r["attempts"], error_words(r["last_error"]),
                       parse_ts(r["created_at"])) for r in rows]
