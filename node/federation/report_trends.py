"""The report's two pictures, as numbers: referrals over time (per week or month, split
by how each turned out) and the conversion funnel (sent, accepted, won), over the same
scope as :mod:`node.federation.reporting` (``created_at`` in ``[from, to)``, UTC days,
optionally one side).

- Over time: a referral counts in the period its ``created_at`` falls in; weeks start
  on Monday. Every period of the range is listed, empty ones too, so a gap shows. The
  groups are those of the report's outcomes: won, in progress (accepted or being
  worked), awaiting (not yet accepted or declined), and closed without a win (lost,
  declined, withdrawn); ``total`` counts them all.
- The funnel, per side: ``sent`` is every referral in scope, ``accepted`` those the
  receiver accepted at some point (now accepted, in progress, won or lost, which only
  follow an acceptance; or withdrawn after an applied status update that says so),
  ``won`` those won.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from node.federation.reporting import _AWAITING, _SCOPED, _WORKED, SIDES, ReportQuery

Period = Literal["week", "month"]
#: Past this many weeks a range is shown by month.
MAX_WEEKS = 26
#: At most this many periods are shown (the latest ones).
MAX_PERIODS = 60
GROUPS = ("won", "in_progress", "awaiting", "closed")
_ACCEPTED = ("accepted", "in-progress", "won", "lost")


def _quoted(states: tuple[str, ...]) -> str:
    return ", ".join(f"'{s}'" for s in states)  # our own constants, never input


@dataclass(frozen=True)
class PeriodCount:
    start: date
    won: int = 0
    in_progress: int = 0
    awaiting: int = 0
    closed: int = 0
    total: int = 0

    def group(self, name: str) -> int:
        return int(getattr(self, name))


@dataclass(frozen=True)
class Trend:
    period: Period
    counts: list[PeriodCount]
    #: Periods left out at the start (the range had more than MAX_PERIODS).
    left_out: int = 0


def period_start(day: date, period: Period) -> date:
    return day - timedelta(days=day.weekday()) if period == "week" else day.replace(day=1)


def previous_start(start: date, period: Period) -> date:
    if period == "week":
        return start - timedelta(days=7)
    return date(start.year - (start.month == 1), (start.month - 2) % 12 + 1, 1)


def periods_between(earlier: date, later: date, period: Period) -> int:
    """How many periods start from ``earlier`` up to (not including) ``later``."""
    if period == "week":
        return (later - earlier).days // 7
    return (later.year - earlier.year) * 12 + later.month - earlier.month


def over_time(conn: sqlite3.Connection, q: ReportQuery, today: date, period: Period | None = None) -> Trend:
    """Counts per period from the range's first day (or the first referral) to its last
    day (or today); by week for up to MAX_WEEKS weeks, else by month, unless ``period``."""
    params = q.params()
    first = q.from_date
    if first is None:
        earliest = conn.execute(_SCOPED + "SELECT min(created_at) FROM scoped", params).fetchone()[0]
        first = date.fromisoformat(earliest[:10]) if earliest else today
    last = q.to_date - timedelta(days=1) if q.to_date else today
    last = max(last, first)
    if period is None:
        period = "week" if (last - first).days < MAX_WEEKS * 7 else "month"
    key = ("date(created_at, '-6 days', 'weekday 1')" if period == "week"
           else "substr(created_at, 1, 7) || '-01'")
    found = {
        date.fromisoformat(r["start"]): PeriodCount(
            date.fromisoformat(r["start"]), int(r["won"] or 0), int(r["in_progress"] or 0),
            int(r["awaiting"] or 0), int(r["closed"] or 0), int(r["total"]))
        for r in conn.execute(
            _SCOPED + f"""SELECT {key} AS start, sum(state = 'won') AS won,
                   sum(state IN ({_quoted(_WORKED)})) AS in_progress,
                   sum(state IN ({_quoted(_AWAITING)})) AS awaiting,
                   sum(state IN ('lost', 'declined', 'withdrawn')) AS closed, count(*) AS total
            FROM scoped GROUP BY start""", params)
    }
    # the latest periods first, back to the first one or to MAX_PERIODS
    counts: list[PeriodCount] = []
    first_start, start = period_start(first, period), period_start(last, period)
    while start >= first_start and len(counts) < MAX_PERIODS:
        counts.append(found.get(start, PeriodCount(start)))
        start = previous_start(start, period)
    counts.reverse()
    return Trend(period, counts, periods_between(first_start, counts[0].start, period))


@dataclass(frozen=True)
class Funnel:
    side: str
    sent: int
    accepted: int
    won: int


def funnels(conn: sqlite3.Connection, q: ReportQuery) -> list[Funnel]:
    """One funnel per side in scope (zeros included)."""
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
