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

from node.federation import tallies
from node.federation.reporting import _AWAITING, _WORKED, SIDES, ReportQuery

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


def _earliest(conn: sqlite3.Connection, side: str | None) -> str | None:
    """The first referral's ``created_at`` (of ``side``), from an index's first entry."""
    if side is None:
        return conn.execute("SELECT min(created_at) FROM referrals").fetchone()[0]  # type: ignore[no-any-return]
    return conn.execute("SELECT min(created_at) FROM referrals WHERE side = ?",  # type: ignore[no-any-return]
                        (side,)).fetchone()[0]


def over_time(conn: sqlite3.Connection, q: ReportQuery, today: date, period: Period | None = None) -> Trend:
    """Counts per period from the range's first day (or the first referral) to its last
    day (or today); by week for up to MAX_WEEKS weeks, else by month, unless ``period``.
    Read from the running tallies (:mod:`node.federation.tallies`): months whole from a
    row per month, weeks and the range's ends from a row per day, and only for the
    periods shown."""
    first = q.from_date
    if first is None:
        earliest = _earliest(conn, q.side)
        first = date.fromisoformat(earliest[:10]) if earliest else today
    last = q.to_date - timedelta(days=1) if q.to_date else today
    last = max(last, first)
    if period is None:
        period = "week" if (last - first).days < MAX_WEEKS * 7 else "month"
    # the latest periods first, back to the first one or to MAX_PERIODS
    starts: list[date] = []
    first_start, start = period_start(first, period), period_start(last, period)
    while start >= first_start and len(starts) < MAX_PERIODS:
        starts.append(start)
        start = previous_start(start, period)
    starts.reverse()
    by_state: dict[date, dict[str, int]] = {}
    read_to = last + timedelta(days=1) if q.to_date is None else min(last + timedelta(days=1), q.to_date)
    rows = tallies.per_period(conn, max(first, starts[0]), read_to, q.side, whole_months=period == "month")
    for when, _side, state, n in rows:
        day = date.fromisoformat(when if len(when) == 10 else when + "-01")
        group = by_state.setdefault(period_start(day, period), {})
        group[state] = group.get(state, 0) + n
    counts = [_period_count(s, by_state.get(s, {})) for s in starts]
    return Trend(period, counts, periods_between(first_start, starts[0], period))


def _period_count(start: date, states: dict[str, int]) -> PeriodCount:
    return PeriodCount(
        start, won=states.get("won", 0), in_progress=sum(states.get(s, 0) for s in _WORKED),
        awaiting=sum(states.get(s, 0) for s in _AWAITING),
        closed=sum(states.get(s, 0) for s in ("lost", "declined", "withdrawn")), total=sum(states.values()))


@dataclass(frozen=True)
class Funnel:
    side: str
    sent: int
    accepted: int
    won: int


def funnels(conn: sqlite3.Connection, q: ReportQuery) -> list[Funnel]:
    """One funnel per side in scope (zeros included): sent and won, and the accepted ones
    that are still in an accepted state, from the tallies; plus, read through the index of
    states, the withdrawn ones that an applied status update had taken past acceptance."""
    states: dict[str, dict[str, int]] = {}
    for side, _key, state, n in tallies.counts(conn, "connection", q.from_date, q.to_date, q.side):
        mine = states.setdefault(side, {})
        mine[state] = mine.get(state, 0) + n
    out = []
    for side in SIDES:
        if q.side not in (None, side):
            continue
        mine = states.get(side, {})
        withdrawn_after = conn.execute(
            f"""SELECT count(*) FROM referrals s INDEXED BY referrals_state
            WHERE s.side = :side AND s.state = 'withdrawn'
              AND (:from IS NULL OR s.created_at >= :from) AND (:to IS NULL OR s.created_at < :to)
              AND EXISTS (SELECT 1 FROM referral_events e WHERE e.side = s.side AND e.peer_node_id = s.peer_node_id
                          AND e.referral_id = s.id AND e.applied = 1 AND e.status IN ({_quoted(_ACCEPTED)}))""",
            {**q.params(), "side": side}).fetchone()[0] if mine.get("withdrawn") else 0
        accepted = sum(mine.get(s, 0) for s in _ACCEPTED) + int(withdrawn_after)
        out.append(Funnel(side, sum(mine.values()), accepted, mine.get("won", 0)))
    return out
