"""What waits for a person: the console's Home page.

- referrals received that nobody has accepted or declined yet (the user's own first,
  then the rest for admins);
- opportunities whose follow-up is due today or overdue;
- deliveries that are failing (retried, not yet delivered);
- connection requests from other organisations that wait for an answer.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date
from typing import Any

from node.crm.access import Caller

LIMIT = 20


@dataclass(frozen=True)
class Worklist:
    referrals: list[dict[str, Any]]
    follow_ups: list[dict[str, Any]]
    failing: list[dict[str, Any]]
    requests: list[dict[str, Any]]


def worklist(conn: sqlite3.Connection, caller: Caller, today: date) -> Worklist:
    mine = "" if caller.is_admin else "AND d.owner_user_id = :me"
    referrals = conn.execute(
        f"""SELECT r.local_id, r.referral_type, r.created_at, c.name AS connection, d.id AS deal_id,
                   d.title AS deal, u.name AS owner
            FROM referrals r JOIN connections c ON c.id = r.connection_id
            LEFT JOIN deals d ON d.id = r.deal_id LEFT JOIN users u ON u.id = d.owner_user_id
            WHERE r.side = 'receiver' AND r.state = 'received' {mine}
            ORDER BY r.created_at LIMIT {LIMIT}""",
        {"me": caller.id},
    ).fetchall()
    mine_opp = "" if caller.is_admin else "AND o.created_by = :me"
    follow_ups = conn.execute(
        f"""SELECT o.id, o.referral_type, o.follow_up_on, d.id AS deal_id, d.title AS deal,
                   o.follow_up_on < :today AS overdue
            FROM opportunities o JOIN deals d ON d.id = o.deal_id
            WHERE o.state = 'open' AND o.follow_up_on IS NOT NULL AND o.follow_up_on <= :today {mine_opp}
            ORDER BY o.follow_up_on LIMIT {LIMIT}""",
        {"today": today.isoformat(), "me": caller.id},
    ).fetchall()
    failing = conn.execute(
        f"""SELECT o.peer_node_id, COALESCE(p.name, o.peer_node_id) AS peer, COUNT(*) AS waiting,
                   MIN(o.created_at) AS since, MAX(o.last_error) AS last_error
            FROM outbox o LEFT JOIN peers p ON p.node_id = o.peer_node_id
            WHERE (o.state = 'pending' AND o.attempts > 0) OR o.state = 'failed'
            GROUP BY o.peer_node_id ORDER BY since LIMIT {LIMIT}"""
    ).fetchall()
    requests = conn.execute(
        f"""SELECT c.id, c.name, c.message, c.created_at, u.name AS for_user FROM connections c
            LEFT JOIN users u ON u.email = c.target_email
            WHERE c.role = 'responder' AND c.state = 'requested' ORDER BY c.created_at LIMIT {LIMIT}"""
    ).fetchall()
    return Worklist([dict(r) for r in referrals], [dict(r) for r in follow_ups], [dict(r) for r in failing],
                    [dict(r) for r in requests])
