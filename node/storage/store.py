"""The federation core's tables, and the store that reads and writes them.

All SQL of the federation core lives here; callers get models, not rows. Functions take
the ``sqlite3.Connection`` they run on, so callers compose them inside one
``Database.write`` transaction (the unit of atomicity and of group commit).
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter

from node.storage.records import (
    Connection,
    InboxItem,
    Invitation,
    OutboxItem,
    Peer,
    Referral,
    ReferralEvent,
    from_row,
)
from node.storage.sqlite import insert_row


#: Encodes the offer column written on every referral received: pydantic's encoder took
#: 3.3 µs where ``json.dumps`` with sorted keys took 21.8 (timeit, a 1.9 KB offer). Keys
#: keep the order of the dict (the offer model's); readers parse the column.
@functools.cache
def _json_object() -> TypeAdapter[dict[str, Any]]:
    return TypeAdapter(dict[str, Any])  # made on the first referral stored, not at start


# --- store functions -------------------------------------------------------------------
# Each takes the connection it runs on; callers group them in one transaction.



def _one(conn: sqlite3.Connection, model: Any, sql: str, params: Iterable[Any] = ()) -> Any:
    row = conn.execute(sql, tuple(params)).fetchone()
    return None if row is None else from_row(model, row)


def _all(conn: sqlite3.Connection, model: Any, sql: str, params: Iterable[Any] = ()) -> list[Any]:
    return [from_row(model, row) for row in conn.execute(sql, tuple(params))]


# peers


def upsert_peer(conn: sqlite3.Connection, *, node_id: str, name: str, base_url: str, inbox_url: str,
                discovery: bytes, signing_jwks: dict[str, dict[str, str]], now: str) -> None:
    conn.execute(
        """INSERT INTO peers (node_id, name, base_url, inbox_url, discovery, updated_at)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (node_id) DO UPDATE SET name = excluded.name, base_url = excluded.base_url,
             inbox_url = excluded.inbox_url, discovery = excluded.discovery,
             updated_at = excluded.updated_at""",
        (node_id, name, base_url, inbox_url, discovery, now),
    )
    for kid, jwk in signing_jwks.items():
        conn.execute(
            "INSERT OR IGNORE INTO peer_keys (node_id, kid, use, jwk, first_seen_at) VALUES (?, ?, 'sig', ?, ?)",
            (node_id, kid, json.dumps(jwk, sort_keys=True), now),
        )


def get_peer(conn: sqlite3.Connection, node_id: str) -> Peer | None:
    return _one(conn, Peer, "SELECT * FROM peers WHERE node_id = ?", (node_id,))


def list_peers(conn: sqlite3.Connection) -> list[Peer]:
    return _all(conn, Peer, "SELECT * FROM peers ORDER BY name")


def peer_key_history(conn: sqlite3.Connection, node_id: str) -> list[dict[str, str]]:
    return [json.loads(r[0]) for r in conn.execute(
        "SELECT jwk FROM peer_keys WHERE node_id = ? AND use = 'sig'", (node_id,))]


def peer_retry(conn: sqlite3.Connection, node_id: str) -> tuple[int, float]:
    """A peer's backoff: the attempts failed in a row, and when the next may start (a time
    stamp; 0 for now, and for a peer we do not know)."""
    row = conn.execute("SELECT retry_attempts, retry_not_before FROM peers WHERE node_id = ?",
                       (node_id,)).fetchone()
    return (0, 0.0) if row is None else (int(row[0] or 0), float(row[1] or 0.0))


def clear_peer_retry(conn: sqlite3.Connection, node_id: str) -> bool:
    """End a peer's backoff (it was just heard from); True when there was one."""
    cur = conn.execute(
        "UPDATE peers SET retry_attempts = 0, retry_not_before = 0 WHERE node_id = ?"
        " AND (retry_attempts != 0 OR retry_not_before != 0)",
        (node_id,),
    )
    return cur.rowcount > 0


def set_peer_retry(conn: sqlite3.Connection, node_id: str, attempts: int, not_before: float) -> None:
    conn.execute(
        "UPDATE peers SET retry_attempts = ?, retry_not_before = ? WHERE node_id = ?",
        (attempts, not_before, node_id),
    )


# invitations


def insert_invitation(conn: sqlite3.Connection, *, id: str, name: str, secret_hash: str, direction: str,
                      settings: dict[str, Any], created_by: str | None, created_at: str,
                      expires_at: str) -> Invitation:
    conn.execute(
        """INSERT INTO invitations (id, name, secret_hash, state, direction, settings, created_by,
           created_at, expires_at) VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?)""",
        (id, name, secret_hash, direction, json.dumps(settings), created_by, created_at, expires_at),
    )
    return get_invitation(conn, id)  # type: ignore[return-value]


def get_invitation(conn: sqlite3.Connection, id: str) -> Invitation | None:
    return _one(conn, Invitation, "SELECT * FROM invitations WHERE id = ?", (id,))


def invitation_secret_hash(conn: sqlite3.Connection, id: str) -> str | None:
    row = conn.execute("SELECT secret_hash FROM invitations WHERE id = ?", (id,)).fetchone()
    return None if row is None else str(row[0])


def list_invitations(conn: sqlite3.Connection) -> list[Invitation]:
    return _all(conn, Invitation, "SELECT * FROM invitations ORDER BY created_at DESC, id")


def set_invitation_state(conn: sqlite3.Connection, id: str, state: str, *, used_at: str | None = None,
                         connection_id: str | None = None) -> None:
    conn.execute(
        """UPDATE invitations SET state = ?, used_at = COALESCE(?, used_at),
           connection_id = COALESCE(?, connection_id) WHERE id = ?""",
        (state, used_at, connection_id, id),
    )


# connections


def insert_connection(conn: sqlite3.Connection, c: Connection) -> Connection:
    data = c.model_dump()
    data["settings"] = json.dumps(data["settings"])
    cols = ", ".join(data)
    conn.execute(f"INSERT INTO connections ({cols}) VALUES ({', '.join('?' * len(data))})", tuple(data.values()))
    return c


def get_connection(conn: sqlite3.Connection, id: str) -> Connection | None:
    return _one(conn, Connection, "SELECT * FROM connections WHERE id = ?", (id,))


def list_connections(conn: sqlite3.Connection) -> list[Connection]:
    return _all(conn, Connection, "SELECT * FROM connections ORDER BY created_at, id")


def active_connection_with(conn: sqlite3.Connection, peer_node_id: str) -> Connection | None:
    return _one(conn, Connection,
                "SELECT * FROM connections WHERE peer_node_id = ? AND state = 'active' ORDER BY created_at DESC LIMIT 1",
                (peer_node_id,))


def update_connection(conn: sqlite3.Connection, id: str, *, now: str, **fields: Any) -> Connection:
    if "settings" in fields:
        fields["settings"] = json.dumps(fields["settings"])
    sets = ", ".join(f"{k} = ?" for k in fields)
    conn.execute(f"UPDATE connections SET {sets}, updated_at = ? WHERE id = ?", (*fields.values(), now, id))
    return get_connection(conn, id)  # type: ignore[return-value]


# outbox


def insert_outbox(conn: sqlite3.Connection, *, envelope_id: str, peer_node_id: str, inbox_url: str, type: str,
                  body: bytes, sha256: str, created_at: str, deadline_at: float, message: str,
                  reply_to: str | None, subject_kind: str | None, subject_id: str | None) -> OutboxItem:
    cur = conn.execute(
        """INSERT INTO outbox (envelope_id, peer_node_id, inbox_url, type, body, sha256, created_at,
           deadline_at, message, reply_to, subject_kind, subject_id)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (envelope_id, peer_node_id, inbox_url, type, body, sha256, created_at, deadline_at, message,
         reply_to, subject_kind, subject_id),
    )
    return get_outbox(conn, int(cur.lastrowid or 0))  # type: ignore[return-value]


_OUTBOX_COLS = ("seq, envelope_id, peer_node_id, inbox_url, type, body, sha256, state, attempts, last_error,"
                " created_at, deadline_at, delivered_at, receipt, subject_kind, subject_id")


def get_outbox(conn: sqlite3.Connection, seq: int) -> OutboxItem | None:
    return _one(conn, OutboxItem, f"SELECT {_OUTBOX_COLS} FROM outbox WHERE seq = ?", (seq,))


def outbox_message(conn: sqlite3.Connection, seq: int) -> tuple[str, str | None]:
    row = conn.execute("SELECT message, reply_to FROM outbox WHERE seq = ?", (seq,)).fetchone()
    return str(row[0]), row[1]


def list_outbox(conn: sqlite3.Connection, *, state: str | None = None, subject_id: str | None = None,
                limit: int = 200) -> list[OutboxItem]:
    """Newest first; only those in ``state`` and about ``subject_id`` when given."""
    where = [(c, v) for c, v in (("state", state), ("subject_id", subject_id)) if v is not None]
    clause = (" WHERE " + " AND ".join(f"{c} = ?" for c, _ in where)) if where else ""
    return _all(conn, OutboxItem, f"SELECT {_OUTBOX_COLS} FROM outbox{clause} ORDER BY seq DESC LIMIT ?",
                (*(v for _, v in where), limit))


def mark_delivered(conn: sqlite3.Connection, item: OutboxItem, *, receipt: bytes, now: str) -> bool:
    """Record the receipt for exactly the envelope that was sent. False when the row has
    moved on meanwhile (an admin re-sealed it as another envelope): then nothing changes."""
    cur = conn.execute(
        "UPDATE outbox SET state = 'delivered', receipt = ?, delivered_at = ?, attempts = attempts + 1,"
        " last_error = NULL WHERE seq = ? AND envelope_id = ? AND state IN ('pending', 'failed')",
        (receipt, now, item.seq, item.envelope_id),
    )
    return cur.rowcount == 1


def mark_attempt_failed(conn: sqlite3.Connection, item: OutboxItem, *, error: str, final: bool) -> bool:
    """Count a failed attempt of this very envelope, if it is still pending."""
    cur = conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?, state = CASE WHEN ? THEN 'failed' ELSE state END"
        " WHERE seq = ? AND envelope_id = ? AND state = 'pending'",
        (error, final, item.seq, item.envelope_id),
    )
    return cur.rowcount == 1


def delivered_after(conn: sqlite3.Connection, peer_node_id: str, seq: int, type_prefix: str) -> bool:
    """Whether an item of that type, queued after ``seq``, was delivered to that peer."""
    row = conn.execute(
        "SELECT 1 FROM outbox WHERE peer_node_id = ? AND seq > ? AND state = 'delivered' AND type LIKE ? LIMIT 1",
        (peer_node_id, seq, type_prefix + "%"),
    ).fetchone()
    return row is not None


#: The end of ``last_error`` of an item that failed at its deadline (not refused by the peer).
DEADLINE_PASSED = " (delivery deadline passed)"


def requeue(conn: sqlite3.Connection, seq: int, *, deadline_at: float, body: bytes | None = None,
            envelope_id: str | None = None, sha256: str | None = None) -> None:
    conn.execute(
        """UPDATE outbox SET state = 'pending', deadline_at = ?, last_error = NULL,
           body = COALESCE(?, body), envelope_id = COALESCE(?, envelope_id), sha256 = COALESCE(?, sha256)
           WHERE seq = ?""",
        (deadline_at, body, envelope_id, sha256, seq),
    )


# inbox


def get_inbox(conn: sqlite3.Connection, sender: str, envelope_id: str) -> InboxItem | None:
    return _one(conn, InboxItem, "SELECT * FROM inbox WHERE sender = ? AND envelope_id = ?", (sender, envelope_id))


def insert_inbox(conn: sqlite3.Connection, item: InboxItem) -> None:
    insert_row(conn, "inbox", dict(item))  # a record's fields are its table's columns


def count_inbox(conn: sqlite3.Connection, type: str | None = None) -> int:
    if type is None:
        return int(conn.execute("SELECT count(*) FROM inbox").fetchone()[0])
    return int(conn.execute("SELECT count(*) FROM inbox WHERE type = ?", (type,)).fetchone()[0])


# referrals


def insert_referral(conn: sqlite3.Connection, r: Referral) -> Referral:
    row = dict(r)  # shallow: the offer is encoded, not copied
    row["offer"] = _json_object().dump_json(r.offer).decode()
    insert_row(conn, "referrals", row)
    return r


def get_referral(conn: sqlite3.Connection, side: str, peer_node_id: str, id: str) -> Referral | None:
    return _one(conn, Referral, "SELECT * FROM referrals WHERE side = ? AND peer_node_id = ? AND id = ?",
                (side, peer_node_id, id))


def get_referral_local(conn: sqlite3.Connection, local_id: str) -> Referral | None:
    return _one(conn, Referral, "SELECT * FROM referrals WHERE local_id = ?", (local_id,))


def list_referrals(conn: sqlite3.Connection, side: str | None = None, *, limit: int | None = None,
                   offset: int = 0) -> list[Referral]:
    """Oldest first (of one side when given); a page of ``limit`` from ``offset`` if given."""
    where, params = ("", ()) if side is None else (" WHERE side = ?", (side,))
    page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset)}"
    return _all(conn, Referral, f"SELECT * FROM referrals{where} ORDER BY created_at, local_id{page}", params)


def referrals_of_deal(conn: sqlite3.Connection, deal_id: str, connection_id: str,
                      states: Iterable[str]) -> list[Referral]:
    """The referrals we sent of this deal over this connection that are in ``states``."""
    wanted = list(states)
    marks = ", ".join("?" * len(wanted))
    return _all(conn, Referral,
                f"SELECT * FROM referrals WHERE side = 'sender' AND deal_id = ? AND connection_id = ?"
                f" AND state IN ({marks}) ORDER BY created_at, local_id", (deal_id, connection_id, *wanted))


def update_referral(conn: sqlite3.Connection, local_id: str, *, now: str, **fields: Any) -> None:
    sets = ", ".join(f"{k} = ?" for k in fields)
    conn.execute(f"UPDATE referrals SET {sets}, updated_at = ? WHERE local_id = ?", (*fields.values(), now, local_id))


def insert_event(conn: sqlite3.Connection, e: ReferralEvent) -> bool:
    """Insert a status event; False when that seq is already recorded (at most once)."""
    data = e.model_dump()
    cur = conn.execute(
        f"INSERT OR IGNORE INTO referral_events ({', '.join(data)}) VALUES ({', '.join('?' * len(data))})",
        tuple(data.values()),
    )
    return cur.rowcount == 1


def held_events(conn: sqlite3.Connection, side: str, peer: str, referral_id: str) -> list[ReferralEvent]:
    return _all(conn, ReferralEvent,
                "SELECT * FROM referral_events WHERE side = ? AND peer_node_id = ? AND referral_id = ? AND applied = 0"
                " ORDER BY seq", (side, peer, referral_id))


def mark_event_applied(conn: sqlite3.Connection, side: str, peer: str, referral_id: str, seq: int) -> None:
    conn.execute("UPDATE referral_events SET applied = 1 WHERE side = ? AND peer_node_id = ? AND referral_id = ?"
                 " AND seq = ?", (side, peer, referral_id, seq))


def list_events(conn: sqlite3.Connection, side: str, peer: str, referral_id: str) -> list[ReferralEvent]:
    return _all(conn, ReferralEvent,
                "SELECT * FROM referral_events WHERE side = ? AND peer_node_id = ? AND referral_id = ? ORDER BY seq",
                (side, peer, referral_id))


# users and API tokens


def token_user(conn: sqlite3.Connection, token_hash: str) -> dict[str, Any] | None:
    """The active user of a live token, with the token's id and last use."""
    row = conn.execute(
        """SELECT u.id, u.email, u.name, u.role, t.id AS token_id, t.last_used_at FROM api_tokens t
           JOIN users u ON u.id = t.user_id WHERE t.token_hash = ? AND t.revoked_at IS NULL AND u.active = 1""",
        (token_hash,),
    ).fetchone()
    return None if row is None else dict(row)


def insert_token(conn: sqlite3.Connection, *, id: str, user_id: str, token_hash: str, label: str, now: str) -> None:
    conn.execute(
        "INSERT INTO api_tokens (id, user_id, token_hash, label, created_at) VALUES (?, ?, ?, ?, ?)",
        (id, user_id, token_hash, label, now),
    )


def find_active_user(conn: sqlite3.Connection, email: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT id, email, name, role FROM users WHERE email = ? COLLATE NOCASE AND active = 1", (email,)
    ).fetchone()
    return None if row is None else dict(row)


def connection_for_peer(conn: sqlite3.Connection, id: str, peer_node_id: str) -> Connection | None:
    """A connection by id, but only if it is with that peer: another node's ids are unknown."""
    return _one(conn, Connection, "SELECT * FROM connections WHERE id = ? AND peer_node_id = ?", (id, peer_node_id))
