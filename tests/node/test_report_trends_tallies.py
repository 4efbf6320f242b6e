"""The charts' numbers from the running tallies equal what counting the referrals gave
(the SQL of ``node.federation.report_trends`` before it read the tallies, kept here as the
reference), over random referrals made as the node makes them and many ranges, by week
and by month, per side."""

from __future__ import annotations

import random
import sqlite3
from datetime import date, timedelta
from pathlib import Path

from test_report_tallies import _SCOPED, fill, ranges

from node.federation import report_trends
from node.federation.report_trends import _ACCEPTED, Funnel, PeriodCount, _quoted
from node.federation.reporting import _AWAITING, _WORKED, SIDES, ReportQuery
from node.storage.sqlite import connect, migrate


def old_counts(conn: sqlite3.Connection, q: ReportQuery, period: str) -> dict[date, PeriodCount]:
    key = ("date(created_at, '-6 days', 'weekday 1')" if period == "week"
           else "substr(created_at, 1, 7) || '-01'")
    return {
        date.fromisoformat(r["start"]): PeriodCount(
            date.fromisoformat(r["start"]), int(r["won"] or 0), int(r["in_progress"] or 0),
            int(r["awaiting"] or 0), int(r["closed"] or 0), int(r["total"]))
        for r in conn.execute(
            _SCOPED + f"""SELECT {key} AS start, sum(state = 'won') AS won,
                   sum(state IN ({_quoted(_WORKED)})) AS in_progress,
                   sum(state IN ({_quoted(_AWAITING)})) AS awaiting,
                   sum(state IN ('lost', 'declined', 'withdrawn')) AS closed, count(*) AS total
            FROM scoped GROUP BY start""", q.params())
    }


def old_funnels(conn: sqlite3.Connection, q: ReportQuery) -> list[Funnel]:
    found = {
        r["side"]: Funnel(r["side"], int(r["sent"]), int(r["accepted"] or 0), int(r["won"] or 0))
        for r in conn.execute(
            _SCOPED + f"""SELECT s.side, count(*) AS sent, sum(state = 'won') AS won,
                   sum(state IN ({_quoted(_ACCEPTED)}) OR state = 'withdrawn' AND EXISTS (
                       SELECT 1 FROM referral_events e WHERE e.side = s.side AND e.peer_node_id = s.peer_node_id
                       AND e.referral_id = s.id AND e.applied = 1 AND e.status IN ({_quoted(_ACCEPTED)}))) AS accepted
            FROM scoped s GROUP BY s.side""", q.params())
    }
    return [found.get(side, Funnel(side, 0, 0, 0)) for side in SIDES if q.side in (None, side)]


def same(conn: sqlite3.Connection, q: ReportQuery, today: date) -> int:
    """Compare, and return how many referrals the charts counted (so that a test can
    tell it compared something)."""
    assert report_trends.funnels(conn, q) == old_funnels(conn, q), q
    counted = 0
    for period in ("week", "month"):
        trend = report_trends.over_time(conn, q, today, period)  # type: ignore[arg-type]
        old = old_counts(conn, q, period)
        for c in trend.counts:
            assert c == old.get(c.start, PeriodCount(c.start)), (q, period, c)
        # every period the reference counted is shown, unless left out at the start
        shown = {c.start for c in trend.counts}
        assert all(start in shown or start < trend.counts[0].start for start in old if start <= today), (q, period)
        counted += sum(c.total for c in trend.counts)
    return counted


def test_the_charts_from_the_tallies_equal_counting_the_referrals(tmp_path: Path) -> None:
    conn = connect(tmp_path / "node.db")
    migrate(conn)
    rng = random.Random(12)
    fill(conn, rng, 1500)
    today = date(2026, 7, 20)  # the referrals are from 28 April to mid-July
    counted = sum(same(conn, q, today) for q in ranges(rng))
    assert counted > 10_000
    # some move on: counts that fall to 0 count for nothing, withdrawals after acceptance count
    conn.execute("UPDATE referrals SET state = 'withdrawn' WHERE state = 'in-progress'")
    conn.execute("UPDATE referrals SET state = 'lost' WHERE state = 'accepted' AND side = 'receiver'")
    for q in ranges(rng)[:30]:
        same(conn, q, today + timedelta(days=400))
