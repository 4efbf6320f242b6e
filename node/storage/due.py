"""What delivery is due: each peer's next pending item, the peers that have any, and the
items past their deadline, read through indexes of pending items only (migration 40), so
that a hundred thousand envelopes queued for a peer gone dark cost the sweep nothing
(``bench/scale_dark_peer.py``). Used by ``node.federation.delivery``.
"""

from __future__ import annotations

import sqlite3

from node.storage.records import OutboxItem
from node.storage.store import _OUTBOX_COLS, DEADLINE_PASSED, _all, _one, peer_retry


def next_pending(conn: sqlite3.Connection, peer_node_id: str) -> OutboxItem | None:
    return _one(conn, OutboxItem,
                f"SELECT {_OUTBOX_COLS} FROM outbox WHERE peer_node_id = ? AND state = 'pending' ORDER BY seq LIMIT 1",
                (peer_node_id,))


def next_due(conn: sqlite3.Connection, peer_node_id: str) -> tuple[OutboxItem | None, int, float]:
    """The peer's next pending item (None if none), with its backoff: the attempts failed
    in a row and when the next may start (a time stamp, 0 for now). One read for the
    delivery worker, which needs both before each attempt."""
    item = next_pending(conn, peer_node_id)
    if item is None:
        return None, 0, 0.0
    return (item, *peer_retry(conn, peer_node_id))


#: The peers with pending items, one index seek per peer (a "loose index scan" on
#: outbox_state, migration 40): DISTINCT would read every pending item's index entry, 10 ms
#: every sweep with a dark peer's 100,000 queued.
_PEERS_WITH_PENDING = """
WITH RECURSIVE p(peer) AS (
    SELECT (SELECT min(peer_node_id) FROM outbox WHERE state = 'pending')
    UNION ALL
    SELECT (SELECT min(peer_node_id) FROM outbox WHERE state = 'pending' AND peer_node_id > p.peer)
    FROM p WHERE p.peer IS NOT NULL
)
SELECT peer FROM p WHERE peer IS NOT NULL
"""


def peers_with_pending(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute(_PEERS_WITH_PENDING)]


#: Pending items by deadline: named, because SQLite (without statistics) would rather take
#: outbox_state's equality on state and read every pending item's row for its deadline,
#: 180 ms each sweep with 100,000 queued for a dark peer (bench/scale_dark_peer.py).
_BY_DEADLINE = "INDEXED BY outbox_pending_deadline"

#: The most pending items :func:`fail_overdue` fails at once: a peer dark for days may
#: have a hundred thousand, and each sweep's transaction (and memory) stays small.
OVERDUE_BATCH = 500


def fail_overdue(conn: sqlite3.Connection, now_s: float, *, limit: int = OVERDUE_BATCH) -> list[OutboxItem]:
    """Fail the pending items past their deadline, the earliest first, at most ``limit``
    (the next sweep takes the rest); return them."""
    overdue = _all(conn, OutboxItem,
                   f"SELECT {_OUTBOX_COLS} FROM outbox {_BY_DEADLINE} WHERE state = 'pending' AND deadline_at <= ?"
                   " ORDER BY deadline_at LIMIT ?", (now_s, limit))
    conn.executemany(
        "UPDATE outbox SET state = 'failed', last_error = COALESCE(last_error, '') || ?"
        " WHERE seq = ? AND state = 'pending'",
        [(DEADLINE_PASSED, item.seq) for item in overdue],
    )
    return overdue


def sweep_due(conn: sqlite3.Connection, now_s: float, now_ts: str) -> bool:
    """Whether the delivery sweep has anything to change: a pending item past its deadline
    (``outbox_pending_deadline``), or an open invitation past its time. A hint only: the
    sweep itself decides with the exact rules."""
    overdue = conn.execute(f"SELECT 1 FROM outbox {_BY_DEADLINE} WHERE state = 'pending' AND deadline_at <= ? LIMIT 1",
                           (now_s,)).fetchone()
    stale = conn.execute("SELECT 1 FROM invitations WHERE state = 'open' AND expires_at <= ? LIMIT 1",
                         (now_ts,)).fetchone()
    return overdue is not None or stale is not None
