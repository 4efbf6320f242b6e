"""The report read from the tallies (migration 42) says exactly what the report said when
it counted the referrals themselves: the old SQL is kept here as the reference, and both
are run over random referrals, status updates (applied at once or held and applied later),
state changes, connections that are gone, agents whose email differs only in case, and
ranges that start and end on month boundaries, inside one month, or open."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from node.federation.reporting import (
    _AWAITING,
    _WORKED,
    ALL_STATES,
    SIDES,
    TIMELINE_STATUSES,
    AgentRow,
    ConnectionRow,
    Outcomes,
    ReportQuery,
    SideTotals,
    StatusRow,
    per_agent,
    per_connection,
    per_status,
    side_totals,
)
from node.federation.tallies import periods
from node.storage.migrations import MIGRATIONS, load
from node.storage.sqlite import connect, migrate

# --- the report's SQL before migration 42 (counting the referrals), as the reference ---

#: The referrals in scope; every query starts from it. Named parameters :from, :to, :side.
_SCOPED = """
WITH scoped AS (
    SELECT * FROM referrals
    WHERE (:from IS NULL OR created_at >= :from)
      AND (:to IS NULL OR created_at < :to)
      AND (:side IS NULL OR side = :side)
)
"""

#: Outcome counts of a group; the terminal states are our own constants, never input.
_OUTCOME_COLUMNS = f"""
    count(*) AS sent,
    sum(state = 'won') AS won,
    sum(state = 'lost') AS lost,
    sum(state = 'declined') AS declined,
    sum(state = 'withdrawn') AS withdrawn,
    sum(state IN ({", ".join(f"'{s}'" for s in _WORKED)})) AS in_progress,
    sum(state IN ({", ".join(f"'{s}'" for s in _AWAITING)})) AS awaiting
"""


def _outcomes(row: sqlite3.Row) -> Outcomes:
    return Outcomes(
        sent=int(row["sent"]),
        won=int(row["won"] or 0),
        lost=int(row["lost"] or 0),
        declined=int(row["declined"] or 0),
        withdrawn=int(row["withdrawn"] or 0),
        in_progress=int(row["in_progress"] or 0),
        awaiting=int(row["awaiting"] or 0),
    )


def old_side_totals(conn: sqlite3.Connection, q: ReportQuery) -> list[SideTotals]:
    """One row per side (only ``q.side`` when given), zeros included."""
    found = {
        row["side"]: _outcomes(row)
        for row in conn.execute(
            _SCOPED + f"SELECT side, {_OUTCOME_COLUMNS} FROM scoped GROUP BY side", q.params()
        )
    }
    return [
        SideTotals(side, found.get(side, Outcomes())) for side in SIDES if q.side in (None, side)
    ]


def old_per_connection(conn: sqlite3.Connection, q: ReportQuery) -> list[ConnectionRow]:
    """Connections with referrals in scope, plus active connections; by name, then id."""
    rows: dict[str, dict[str, Any]] = {}
    for row in conn.execute(
        _SCOPED
        + """
        SELECT s.connection_id, s.peer_node_id, s.side, s.state, count(*) AS n,
               c.name AS connection_name, c.peer_node_id AS connection_peer
        FROM scoped s LEFT JOIN connections c ON c.id = s.connection_id
        GROUP BY s.connection_id, s.side, s.state
        """,
        q.params(),
    ):
        entry = rows.setdefault(
            row["connection_id"],
            {
                "name": row["connection_name"] or "",
                "peer": row["connection_peer"] or row["peer_node_id"],
                "sent": 0,
                "received": 0,
                "states": dict.fromkeys(ALL_STATES, 0),
            },
        )
        entry["sent" if row["side"] == "sender" else "received"] += int(row["n"])
        entry["states"][row["state"]] = entry["states"].get(row["state"], 0) + int(row["n"])
    for row in conn.execute(
        "SELECT id, name, peer_node_id FROM connections WHERE state = 'active'"
    ):
        rows.setdefault(
            row["id"],
            {
                "name": row["name"],
                "peer": row["peer_node_id"],
                "sent": 0,
                "received": 0,
                "states": dict.fromkeys(ALL_STATES, 0),
            },
        )
    result = [
        ConnectionRow(cid, e["name"], e["peer"], e["sent"], e["received"], e["states"])
        for cid, e in rows.items()
    ]
    return sorted(result, key=lambda r: (r.connection_name.lower(), r.connection_id))


def old_per_agent(conn: sqlite3.Connection, q: ReportQuery) -> list[AgentRow]:
    """Referring agents (from each offer), per side; by side, then email."""
    # SQLite: with max(), the bare column ``name`` comes from the row holding the max, so
    # it is the name on the agent's latest referral.
    rows = conn.execute(
        _SCOPED
        + f"""
        SELECT side,
               lower(coalesce(json_extract(offer, '$.referring_agent.email'), '')) AS email,
               coalesce(json_extract(offer, '$.referring_agent.name'), '') AS name,
               max(created_at || local_id) AS latest,
               {_OUTCOME_COLUMNS}
        FROM scoped
        GROUP BY side, lower(coalesce(json_extract(offer, '$.referring_agent.email'), ''))
        ORDER BY side = 'receiver', email
        """,
        q.params(),
    )
    return [AgentRow(row["side"], row["email"], row["name"], _outcomes(row)) for row in rows]


def old_per_status(conn: sqlite3.Connection, q: ReportQuery) -> list[StatusRow]:
    """Every state, per side (only ``q.side`` when given): current and reached counts."""
    params = q.params()
    current = {
        (r["side"], r["state"]): int(r["n"])
        for r in conn.execute(
            _SCOPED + "SELECT side, state, count(*) AS n FROM scoped GROUP BY side, state", params
        )
    }
    reached = {
        (r["side"], r["status"]): int(r["n"])
        for r in conn.execute(
            _SCOPED
            + """,
        marks AS (
            SELECT side, local_id, state AS status FROM scoped
            UNION
            SELECT s.side, s.local_id, e.status FROM scoped s
            JOIN referral_events e ON e.side = s.side AND e.peer_node_id = s.peer_node_id
                 AND e.referral_id = s.id AND e.applied = 1
        )
        SELECT side, status, count(*) AS n FROM marks GROUP BY side, status
        """,
            params,
        )
    }
    states = ALL_STATES + tuple(sorted({s for _, s in current} - set(ALL_STATES)))
    return [
        StatusRow(
            side,
            state,
            current.get((side, state), 0),
            reached.get((side, state), 0) if state in TIMELINE_STATUSES else None,
        )
        for side in SIDES
        if q.side in (None, side)
        for state in states
    ]



# --- random referrals, made the way the node makes them --------------------------------

PATHS = {
    "sender": [["accepted", "in-progress", "won"], ["accepted", "lost"], ["declined"], ["accepted", "in-progress"],
               ["withdrawn"], []],
    "receiver": [["accepted", "in-progress", "in-progress", "won"], ["declined"], ["accepted"], []],
}
AGENTS = [("Ava Agent", "ava@agency.example"), ("Ava A.", "AVA@Agency.example"), ("Bo", "bo@x.example"), (None, None)]


def fill(conn: sqlite3.Connection, rng: random.Random, count: int) -> None:
    for cid, name, peer, state in (("con_a", "Alpha", "peer_a", "active"), ("con_b", "beta", "peer_b", "disconnected"),
                                   ("con_c", "Gamma", "peer_c", "active")):
        conn.execute("INSERT INTO connections (id, peer_node_id, role, state, direction, name, created_at, updated_at)"
                     " VALUES (?, ?, 'requester', ?, 'both', ?, 't', 't')", (cid, peer, state, name))
    start = date(2026, 4, 28)
    for i in range(count):
        side = rng.choice(SIDES)
        cid, peer = rng.choice([("con_a", "peer_a"), ("con_b", "peer_b"), ("con_gone", "peer_gone")])
        day = start + timedelta(days=rng.randrange(0, 75))
        at = f"{day.isoformat()}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z"
        name, email = rng.choice(AGENTS)
        agent = {} if email is None else {"referring_agent": {"name": name, "email": email}}
        first = "sent" if side == "sender" else "received"
        conn.execute("INSERT INTO referrals (local_id, side, peer_node_id, id, connection_id, state, referral_type,"
                     " offer, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'mortgage', ?, ?, ?)",
                     (f"ref_{i:05d}", side, peer, f"rfl_{i}", cid, first, json.dumps(agent), at, at))
        if side == "sender" and rng.random() < 0.8:
            conn.execute("UPDATE referrals SET state = 'delivered' WHERE local_id = ?", (f"ref_{i:05d}",))
        if side == "sender" and rng.random() < 0.05:
            conn.execute("UPDATE referrals SET state = 'failed' WHERE local_id = ?", (f"ref_{i:05d}",))
            continue
        path = rng.choice(PATHS[side])
        held = rng.random() < 0.3 and len(path) > 1  # the first update arrives last
        for seq, status in enumerate(path, start=1):
            applied = 0 if held and seq > 1 else 1
            conn.execute("INSERT INTO referral_events (side, peer_node_id, referral_id, seq, status, at, applied)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", (side, peer, f"rfl_{i}", seq, status, at, applied))
            if applied:
                conn.execute("UPDATE referrals SET state = ?, last_seq = ? WHERE local_id = ?",
                             (status, seq, f"ref_{i:05d}"))
        if held:
            if rng.random() < 0.5:  # the missing one came: the held ones apply in order, and the
                for seq in range(2, len(path) + 1):  # state moves once, to the last (as on_status does)
                    conn.execute("UPDATE referral_events SET applied = 1 WHERE side = ? AND peer_node_id = ?"
                                 " AND referral_id = ? AND seq = ?", (side, peer, f"rfl_{i}", seq))
                conn.execute("UPDATE referrals SET state = ?, last_seq = ? WHERE local_id = ?",
                             (path[-1], len(path), f"ref_{i:05d}"))


def ranges(rng: random.Random) -> list[ReportQuery]:
    days = [None, date(2026, 4, 28), date(2026, 5, 1), date(2026, 5, 17), date(2026, 5, 31), date(2026, 6, 1),
            date(2026, 6, 2), date(2026, 6, 30), date(2026, 7, 1), date(2026, 7, 11), date(2026, 8, 1)]
    out = [ReportQuery(), ReportQuery(side="receiver")]
    for a in days:
        for b in days:
            if a is None or b is None or a < b:
                out.append(ReportQuery(a, b, rng.choice([None, None, "sender", "receiver"])))
    return out


def same(conn: sqlite3.Connection, q: ReportQuery) -> None:
    assert side_totals(conn, q) == old_side_totals(conn, q), q
    assert per_connection(conn, q) == old_per_connection(conn, q), q
    assert per_agent(conn, q) == old_per_agent(conn, q), q
    assert per_status(conn, q) == old_per_status(conn, q), q


def test_the_tallies_give_the_report_the_referrals_gave(tmp_path: Path) -> None:
    conn = connect(tmp_path / "node.db")
    migrate(conn)
    rng = random.Random(16)
    fill(conn, rng, 1500)
    qs = ranges(rng)
    assert len(qs) > 60
    for q in qs:
        same(conn, q)
    # and once some have moved on: counts that fall to 0 count for nothing
    conn.execute("UPDATE referrals SET state = 'lost' WHERE state = 'in-progress' AND side = 'sender'")
    conn.execute("UPDATE referrals SET connection_id = 'con_c' WHERE connection_id = 'con_b'")
    for q in qs[:20]:
        same(conn, q)


def test_migration_42_counts_what_the_node_already_holds(tmp_path: Path) -> None:
    conn = connect(tmp_path / "node.db")
    for version, _, module in MIGRATIONS:  # the database as it was before migration 42
        if version < 42:
            load(module)(sqlite_utils.Database(conn))
            conn.execute(f"PRAGMA user_version={version}")
    rng = random.Random(42)
    fill(conn, rng, 600)
    migrate(conn)
    for q in ranges(rng)[:40]:
        same(conn, q)


def test_a_range_reads_whole_months_and_the_days_at_its_ends() -> None:
    p = periods(date(2026, 5, 17), date(2026, 7, 11))
    assert (p.month_from, p.month_to) == ("2026-06", "2026-07")
    assert (p.day_from, p.day_to, p.tail_from, p.tail_to) == ("2026-05-17", "2026-06-01", "2026-07-01", "2026-07-11")
    p = periods(date(2026, 5, 3), date(2026, 5, 20))  # inside one month: days only
    assert (p.month_from, p.month_to, p.day_from, p.day_to) == ("", "", "2026-05-03", "2026-05-20")
    p = periods(None, None)  # every month, no days
    assert (p.month_from, p.month_to, p.day_to, p.tail_from) == ("", "~", "", "~")
    p = periods(date(2026, 12, 5), None)
    assert (p.month_from, p.day_to) == ("2027-01", "2027-01-01")
