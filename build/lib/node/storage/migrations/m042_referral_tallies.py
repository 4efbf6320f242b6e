"""Migration 42: running counts of referrals for the report, kept by triggers.

The referral report (``node.federation.reporting``) counts referrals by side, connection,
referring agent and state over a range of days. Counting the referrals themselves takes
seconds at a million; so the database keeps the counts as they change, in
``referral_tally``, for each day (``grain = 'd'``, ``period`` ``YYYY-MM-DD``) and each
month (``grain = 'm'``, ``period`` ``YYYY-MM``) of the referral's ``created_at``: a report
adds the months its range covers whole and the days at its ends, a few thousand rows
whatever the number of referrals, each part one range of the primary key.

- ``dim = 'connection'``, ``key`` the connection id, ``state`` the current state;
- ``dim = 'agent'``, ``key`` the referring agent's email in lower case (``''`` if none),
  ``state`` the current state;
- ``dim = 'reached'``, ``key`` ``''``, ``state`` a status of the timeline (accepted,
  declined, in-progress, won, lost, withdrawn) that the referral is in or has been in:
  counted once per referral, when ``referral_reached`` first records the pair. A
  referral reaches such a status only with a status update, so "has been in" is the
  report's "is now, or has an applied update for".

A row's ``n`` may fall to 0 (a referral left that state); the report ignores such rows.
The agent's name on the report is read from the latest referral of the range, found with
``referrals_agent``, an index on the agent's email as the tally computes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

#: The referring agent's email as the tally and the report key it.
AGENT = "lower(coalesce(json_extract({r}offer, '$.referring_agent.email'), ''))"
#: Days and months: the grain and the length of ``created_at`` its period keeps.
GRAINS = (("d", 10), ("m", 7))
_KEY = "(dim, grain, period, side, key, state)"
#: The statuses a timeline records (``node.federation.reporting.TIMELINE_STATUSES``).
TIMELINE = "('accepted', 'declined', 'in-progress', 'won', 'lost', 'withdrawn')"


def _count(r: str, sign: str) -> str:
    """Add ``sign`` (``1`` or ``-1``) to referral ``r``'s connection and agent counts, for
    its day and its month."""
    out = []
    for grain, length in GRAINS:
        for dim, key in (("connection", f"{r}.connection_id"), ("agent", AGENT.format(r=f"{r}."))):
            out.append(
                f"INSERT INTO referral_tally (dim, grain, period, side, key, state, n) VALUES "
                f"('{dim}', '{grain}', substr({r}.created_at, 1, {length}), {r}.side, {key}, {r}.state, {sign}) "
                f"ON CONFLICT {_KEY} DO UPDATE SET n = n + excluded.n;"
            )
    return "\n".join(out)


def _reach(local_id: str, status: str, where: str) -> str:
    """Count ``status`` as reached by the referral ``local_id`` (selected from
    ``referrals r`` by ``where``), unless it was already."""
    out = []
    for grain, length in GRAINS:
        out.append(
            f"INSERT INTO referral_tally (dim, grain, period, side, key, state, n) "
            f"SELECT 'reached', '{grain}', substr(r.created_at, 1, {length}), r.side, '', {status}, 1 FROM referrals r "
            f"WHERE {where} AND NOT EXISTS (SELECT 1 FROM referral_reached m "
            f"WHERE m.local_id = {local_id} AND m.status = {status}) "
            f"ON CONFLICT {_KEY} DO UPDATE SET n = n + excluded.n;"
        )
    out.append(f"INSERT OR IGNORE INTO referral_reached (local_id, status) SELECT {local_id}, {status} "
               f"FROM referrals r WHERE {where};")
    return "\n".join(out)


_EVENT_REFERRAL = "r.side = new.side AND r.peer_node_id = new.peer_node_id AND r.id = new.referral_id"


def up(db: sqlite_utils.Database) -> None:
    db.executescript(
        f"""
        CREATE TABLE referral_tally (
            dim TEXT NOT NULL CHECK (dim IN ('connection', 'agent', 'reached')),
            grain TEXT NOT NULL CHECK (grain IN ('d', 'm')),
            period TEXT NOT NULL,
            side TEXT NOT NULL,
            key TEXT NOT NULL,
            state TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (dim, grain, period, side, key, state)
        ) WITHOUT ROWID;
        CREATE TABLE referral_reached (
            local_id TEXT NOT NULL,
            status TEXT NOT NULL,
            PRIMARY KEY (local_id, status)
        ) WITHOUT ROWID;
        CREATE INDEX referrals_agent ON referrals (side, {AGENT.format(r="")}, created_at, local_id);

        CREATE TRIGGER referrals_tally_insert AFTER INSERT ON referrals BEGIN
            {_count("new", "1")}
        END;
        CREATE TRIGGER referrals_tally_delete AFTER DELETE ON referrals BEGIN
            {_count("old", "-1")}
        END;
        CREATE TRIGGER referrals_tally_update
        AFTER UPDATE OF state, side, connection_id, created_at, offer ON referrals
        WHEN old.state IS NOT new.state OR old.side IS NOT new.side OR old.connection_id IS NOT new.connection_id
             OR old.created_at IS NOT new.created_at OR old.offer IS NOT new.offer BEGIN
            {_count("old", "-1")}
            {_count("new", "1")}
        END;
        CREATE TRIGGER referrals_reach_insert AFTER INSERT ON referrals WHEN new.state IN {TIMELINE} BEGIN
            {_reach("new.local_id", "new.state", "r.local_id = new.local_id")}
        END;
        CREATE TRIGGER referrals_reach_update AFTER UPDATE OF state ON referrals
        WHEN new.state IN {TIMELINE} AND old.state IS NOT new.state BEGIN
            {_reach("new.local_id", "new.state", "r.local_id = new.local_id")}
        END;
        CREATE TRIGGER referral_events_reach_insert AFTER INSERT ON referral_events
        WHEN new.applied = 1 AND new.status IN {TIMELINE} BEGIN
            {_reach("r.local_id", "new.status", _EVENT_REFERRAL)}
        END;
        CREATE TRIGGER referral_events_reach_update AFTER UPDATE OF applied ON referral_events
        WHEN new.applied = 1 AND old.applied = 0 AND new.status IN {TIMELINE} BEGIN
            {_reach("r.local_id", "new.status", _EVENT_REFERRAL)}
        END;

        -- What the node holds already.
        INSERT INTO referral_reached (local_id, status)
            SELECT local_id, state FROM referrals WHERE state IN {TIMELINE}
            UNION
            SELECT r.local_id, e.status FROM referral_events e
            JOIN referrals r ON r.side = e.side AND r.peer_node_id = e.peer_node_id AND r.id = e.referral_id
            WHERE e.applied = 1 AND e.status IN {TIMELINE};
        """
    )
    for grain, length in GRAINS:
        db.executescript(
            f"""
            INSERT INTO referral_tally (dim, grain, period, side, key, state, n)
                SELECT 'connection', '{grain}', substr(created_at, 1, {length}), side, connection_id, state, count(*)
                FROM referrals GROUP BY 3, 4, 5, 6;
            INSERT INTO referral_tally (dim, grain, period, side, key, state, n)
                SELECT 'agent', '{grain}', substr(created_at, 1, {length}), side, {AGENT.format(r="")}, state, count(*)
                FROM referrals GROUP BY 3, 4, 5, 6;
            INSERT INTO referral_tally (dim, grain, period, side, key, state, n)
                SELECT 'reached', '{grain}', substr(r.created_at, 1, {length}), r.side, '', m.status, count(*)
                FROM referral_reached m JOIN referrals r ON r.local_id = m.local_id GROUP BY 3, 4, 6;
            """
        )
