"""The counts the referral report is made of, read from ``referral_tally`` (migration 42):
the database keeps them per day and per month as referrals come and change, so a report
reads a few thousand rows whatever the number of referrals.

A range ``[from, to)`` of days is read as the months it covers whole plus the days at its
ends (:func:`periods`); an open end takes every month on that side. A tally row whose count
fell to 0 (its referrals moved on) counts for nothing.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date

#: The sides of a referral, as a report lists them.
SIDES = ("sender", "receiver")
#: Below every period; above every period.
_BEFORE, _AFTER = "", "~"


@dataclass(frozen=True)
class Periods:
    """The tally rows of a range: months ``[month_from, month_to)`` and the days
    ``[day_from, day_to)`` and ``[tail_from, tail_to)`` (each ``YYYY-MM`` or ``YYYY-MM-DD``;
    empty ranges where there is nothing)."""

    month_from: str
    month_to: str
    day_from: str
    day_to: str
    tail_from: str
    tail_to: str

    def params(self) -> dict[str, str]:
        return {f"p_{k}": v for k, v in self.__dict__.items()}


def _month_after(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


def periods(from_date: date | None, to_date: date | None) -> Periods:
    """The months ``[from, to)`` covers whole, and the days left at each end."""
    first = None if from_date is None else (from_date if from_date.day == 1 else _month_after(from_date))
    last = None if to_date is None else to_date.replace(day=1)  # the first month not whole
    if first is not None and last is not None and first >= last:  # no whole month: days only
        return Periods(_BEFORE, _BEFORE, from_date.isoformat(), to_date.isoformat(),  # type: ignore[union-attr]
                       _BEFORE, _BEFORE)
    return Periods(
        _BEFORE if first is None else first.isoformat()[:7],
        _AFTER if last is None else last.isoformat()[:7],
        _BEFORE if from_date is None else from_date.isoformat(),
        _BEFORE if first is None else first.isoformat(),
        _AFTER if last is None else last.isoformat(),
        _AFTER if to_date is None else to_date.isoformat(),
    )


def counts(conn: sqlite3.Connection, dim: str, from_date: date | None, to_date: date | None,
           side: str | None) -> list[tuple[str, str, str, int]]:
    """``(side, key, state, n)`` over the range, for ``dim`` (``connection``, ``agent`` or
    ``reached``), only where ``n`` is not 0; by side, key and state. Each of the three parts
    of the range is one range of the table's primary key."""
    if dim not in ("connection", "agent", "reached"):
        raise ValueError(f"no tally {dim!r}")
    part = ("SELECT side, key, state, n FROM referral_tally WHERE dim = :dim AND grain = '{grain}'"
            " AND period >= :{start} AND period < :{end}" + (" AND side = :side" if side is not None else ""))
    rows = conn.execute(
        "SELECT side, key, state, sum(n) AS n FROM ("
        + " UNION ALL ".join(part.format(grain=g, start=a, end=b) for g, a, b in (
            ("m", "p_month_from", "p_month_to"), ("d", "p_day_from", "p_day_to"), ("d", "p_tail_from", "p_tail_to")))
        + ") GROUP BY side, key, state HAVING sum(n) != 0 ORDER BY side, key, state",
        {"dim": dim, "side": side, **periods(from_date, to_date).params()},
    )
    return [(r["side"], r["key"], r["state"], int(r["n"])) for r in rows]


def per_period(conn: sqlite3.Connection, from_date: date, to_date: date, side: str | None, *,
               whole_months: bool) -> list[tuple[str, str, str, int]]:
    """``(period, side, state, n)`` of the referrals created in ``[from, to)``, by current
    state, where ``n`` is not 0. ``period`` is a day (``YYYY-MM-DD``), or with
    ``whole_months`` a month (``YYYY-MM``) for the months the range covers whole and a day
    at its ends: a chart by month reads a row per month, not per day."""
    grain_part = ("SELECT period, side, state, n FROM referral_tally WHERE dim = 'connection' AND grain = '{grain}'"
                  " AND period >= :{start} AND period < :{end}" + (" AND side = :side" if side is not None else ""))
    if whole_months:
        parts = [("m", "p_month_from", "p_month_to"), ("d", "p_day_from", "p_day_to"), ("d", "p_tail_from", "p_tail_to")]
        params: dict[str, str | None] = {**periods(from_date, to_date).params()}
    else:
        parts = [("d", "p_from", "p_to")]
        params = {"p_from": from_date.isoformat(), "p_to": to_date.isoformat()}
    rows = conn.execute(
        "SELECT period, side, state, sum(n) AS n FROM ("
        + " UNION ALL ".join(grain_part.format(grain=g, start=a, end=b) for g, a, b in parts)
        + ") GROUP BY period, side, state HAVING sum(n) != 0",
        {**params, "side": side},
    )
    return [(r["period"], r["side"], r["state"], int(r["n"])) for r in rows]


#: The referring agent's email as migration 42 keys the tally and indexes referrals.
AGENT = "lower(coalesce(json_extract(offer, '$.referring_agent.email'), ''))"


def agent_name(conn: sqlite3.Connection, side: str, email: str, from_date: date | None,
               to_date: date | None) -> str:
    """The agent's name on their latest referral of the range (created_at, then local_id)."""
    where = ["side = :side", f"{AGENT} = :email"]
    if from_date is not None:
        where.append("created_at >= :from")
    if to_date is not None:
        where.append("created_at < :to")
    row = conn.execute(
        "SELECT coalesce(json_extract(offer, '$.referring_agent.name'), '') FROM referrals INDEXED BY referrals_agent"
        f" WHERE {' AND '.join(where)} ORDER BY created_at DESC, local_id DESC LIMIT 1",
        {"side": side, "email": email, "from": from_date and from_date.isoformat(),
         "to": to_date and to_date.isoformat()},
    ).fetchone()
    return "" if row is None else str(row[0])


def peer_of_connection(conn: sqlite3.Connection, connection_id: str) -> str:
    """The peer of a connection this node no longer holds, from one of its referrals."""
    row = conn.execute("SELECT peer_node_id FROM referrals WHERE connection_id = ? LIMIT 1",
                       (connection_id,)).fetchone()
    return "" if row is None else str(row[0])
