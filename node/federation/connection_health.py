"""How deliveries to and from a peer are going, for the console's connection page: what
waits in the outbox for it, what keeps failing and why, when it last took something
from us, and when we last heard from it (an envelope in our inbox).

Delivery is per peer, not per connection (one queue per node, in order), so two
connections with the same node show the same health.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from node.storage import store


@dataclass(frozen=True)
class Health:
    #: Envelopes waiting to be delivered (never tried, or tried and to be tried again).
    queued: int
    #: Of those, the ones already tried and refused or unanswered.
    retrying: int
    #: Envelopes given up (refused for good, or past their deadline): an admin may retry them.
    failed: int
    oldest_queued_at: str | None
    #: The last error of the envelope that is held up longest (or of the last one given up).
    last_error: str | None
    last_delivered_at: str | None
    last_heard_at: str | None
    #: When the next attempt is due, while the peer is being backed off.
    next_attempt_at: datetime | None

    @property
    def failing(self) -> bool:
        return self.retrying > 0 or self.failed > 0


def delivery_health(conn: sqlite3.Connection, peer_node_id: str, now_s: float) -> Health:
    row = conn.execute(
        """SELECT SUM(state = 'pending') AS queued, SUM(state = 'pending' AND attempts > 0) AS retrying,
                  SUM(state = 'failed') AS failed, MIN(CASE WHEN state = 'pending' THEN created_at END) AS oldest,
                  MAX(delivered_at) AS delivered
           FROM outbox WHERE peer_node_id = ?""",
        (peer_node_id,),
    ).fetchone()
    error = conn.execute(
        """SELECT last_error FROM outbox WHERE peer_node_id = ? AND last_error IS NOT NULL
             AND state IN ('pending', 'failed')
           ORDER BY state = 'pending' DESC, CASE WHEN state = 'pending' THEN seq ELSE -seq END LIMIT 1""",
        (peer_node_id,),
    ).fetchone()
    heard = conn.execute("SELECT MAX(received_at) FROM inbox WHERE sender = ?", (peer_node_id,)).fetchone()
    _, not_before = store.peer_retry(conn, peer_node_id)
    return Health(
        queued=row["queued"] or 0,
        retrying=row["retrying"] or 0,
        failed=row["failed"] or 0,
        oldest_queued_at=row["oldest"],
        last_error=error[0] if error else None,
        last_delivered_at=row["delivered"],
        last_heard_at=heard[0] if heard else None,
        next_attempt_at=datetime.fromtimestamp(not_before, UTC) if (row["queued"] and not_before > now_s) else None,
    )
