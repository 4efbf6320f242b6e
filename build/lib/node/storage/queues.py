"""How much waits in the outbox, per peer: what ``/metrics`` reports as outbox depth and
the age of the oldest item.

One indexed look-up per known peer (``outbox_due``: peer, state, seq), so the cost follows
what is pending, never the delivered history.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class PeerQueue:
    peer_node_id: str
    pending: int
    #: ``created_at`` of the oldest pending item, None when nothing is pending.
    oldest_created_at: str | None


def outbox_queues(conn: sqlite3.Connection) -> list[PeerQueue]:
    """Every known peer's pending outbox items, with the oldest one's creation time."""
    queues = []
    for (peer,) in conn.execute("SELECT node_id FROM peers ORDER BY node_id").fetchall():
        (pending,) = conn.execute(
            "SELECT count(*) FROM outbox WHERE peer_node_id = ? AND state = 'pending'", (peer,)).fetchone()
        oldest = None
        if pending:
            oldest = conn.execute(
                "SELECT created_at FROM outbox WHERE peer_node_id = ? AND state = 'pending' ORDER BY seq LIMIT 1",
                (peer,)).fetchone()[0]
        queues.append(PeerQueue(peer, pending, oldest))
    return queues
