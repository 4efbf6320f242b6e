"""Referral reporting: referrals sent and received over a date range, per side, per
connection, per referring agent and per status, with conversion; as JSON and as CSV.

Scope. A report covers the referrals whose ``created_at`` falls in ``[from, to)``: UTC
calendar days ``YYYY-MM-DD``, ``to`` exclusive, either end optional (open). On the sender
side ``created_at`` is when the referral was sent, on the receiver side when it arrived.
``side`` (``sender`` or ``receiver``) narrows the report to one side.

Numbers.
- Outcome counts use each referral's *current* state: ``won``, ``lost``, ``declined``,
  ``withdrawn``; ``in_progress`` counts the referrals the receiver accepted and works
  (accepted, in-progress); ``awaiting`` those not yet accepted or declined (sent,
  delivered, received, or failed and waiting for a retry). So ``sent`` (the referrals in
  scope) = won + lost + declined + withdrawn + in_progress + awaiting. ``won`` is
  terminal, so a referral that was won is counted as won for good.
- ``conversion`` = won / sent as a decimal string with 4 places, rounded half up
  (``"0.4286"``); ``"0"`` when nothing was sent. Never a float.
- Per status: ``current`` = referrals now in that state; ``reached`` = referrals that are in
  that state now or ever were (an applied status update in their timeline), so an
  accepted referral that was later won counts in ``reached`` for both. ``reached`` is
  ``null`` for the delivery states (deferred, cancelled, sent, delivered, failed,
  received), which no timeline records.
- Per referring agent: grouped by side and by the agent's email (case-insensitive) from
  the offer; the name shown is the one on the agent's latest referral in scope.
- Per connection: every connection with referrals in scope, plus every active connection
  (with zeros); ``states`` counts referrals of both sides (or of ``side``) by current state.

CSV. One file, long format: one number per row, columns :data:`CSV_COLUMNS`. ``section``
is ``range``, ``totals``, ``connection``, ``agent`` or ``status``; ``subject`` is the
connection id, the agent's email or the status; ``metric`` names the number (for
connections, ``state.<state>`` for the per-state counts). Text cells that a spreadsheet
would read as a formula (leading ``= + - @`` or a tab/CR) are prefixed with ``'``.

The counts come from the tallies the database keeps (``node.federation.tallies``,
migration 42), not from the referrals themselves: a report costs the same at a million.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from multidict import MultiMapping

from node.base.errors import ApiError
from node.federation import tallies
from node.federation.tallies import SIDES
from protocol.states import ReferralState

#: Statuses a receiver reports, and so the ones a timeline can show as reached.
TIMELINE_STATUSES = frozenset({"accepted", "declined", "in-progress", "won", "lost", "withdrawn"})
ALL_STATES = tuple(s.value for s in ReferralState)
_WORKED = (ReferralState.ACCEPTED.value, ReferralState.IN_PROGRESS.value)
_AWAITING = tuple(s.value for s in (ReferralState.SENT, ReferralState.DELIVERED, ReferralState.RECEIVED,
                                    ReferralState.FAILED))
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PLACES = Decimal("0.0001")


# --- the query -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReportQuery:
    """What a report covers: ``[from_date, to_date)`` on created_at, and optionally one side."""

    from_date: date | None = None
    to_date: date | None = None
    side: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "from": self.from_date.isoformat() if self.from_date else None,
            "to": self.to_date.isoformat() if self.to_date else None,
            "side": self.side,
        }


def parse_query(query: MultiMapping[str] | Mapping[str, str]) -> ReportQuery:
    """Read ``from``, ``to`` and ``side`` from a query string; 400 naming the parameter
    for anything malformed, repeated or unknown."""
    known = ("from", "to", "side")
    for name in query:
        if name not in known:
            raise ApiError(
                400, "invalid", f"unknown parameter {name!r}; use from, to, side", field=name
            )
        if isinstance(query, MultiMapping) and len(query.getall(name)) > 1:
            raise ApiError(400, "invalid", f"{name} is given more than once", field=name)
    from_date = _parse_date(query, "from")
    to_date = _parse_date(query, "to")
    if from_date is not None and to_date is not None and to_date <= from_date:
        raise ApiError(400, "invalid", "to is exclusive and must be after from", field="to")
    side = query.get("side")
    if side is not None and side not in SIDES:
        raise ApiError(400, "invalid", "side is sender or receiver", field="side")
    return ReportQuery(from_date, to_date, side)


def _parse_date(query: MultiMapping[str] | Mapping[str, str], name: str) -> date | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        if not _DATE.match(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "invalid", f"{name} is a date as YYYY-MM-DD", field=name) from None


# --- the report ------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcomes:
    sent: int = 0
    won: int = 0
    lost: int = 0
    declined: int = 0
    withdrawn: int = 0
    #: Accepted by the receiver and being worked (accepted, in-progress).
    in_progress: int = 0
    #: Not yet accepted or declined: on its way, delivered, received, or a delivery that
    #: gave up and waits for a retry.
    awaiting: int = 0

    @property
    def conversion(self) -> str:
        return conversion(self.won, self.sent)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "won": self.won,
            "lost": self.lost,
            "declined": self.declined,
            "withdrawn": self.withdrawn,
            "in_progress": self.in_progress,
            "awaiting": self.awaiting,
            "conversion": self.conversion,
        }


@dataclass(frozen=True)
class SideTotals:
    side: str
    outcomes: Outcomes


@dataclass(frozen=True)
class ConnectionRow:
    connection_id: str
    connection_name: str
    peer_node_id: str
    sent: int
    received: int
    states: dict[str, int]


@dataclass(frozen=True)
class AgentRow:
    side: str
    email: str
    name: str
    outcomes: Outcomes


@dataclass(frozen=True)
class StatusRow:
    side: str
    status: str
    current: int
    reached: int | None


@dataclass(frozen=True)
class Report:
    query: ReportQuery
    totals: list[SideTotals] = field(default_factory=list)
    connections: list[ConnectionRow] = field(default_factory=list)
    agents: list[AgentRow] = field(default_factory=list)
    statuses: list[StatusRow] = field(default_factory=list)


def conversion(won: int, sent: int) -> str:
    """won / sent with 4 decimal places, rounded half up; "0" when nothing was sent."""
    if sent == 0:
        return "0"
    return str((Decimal(won) / Decimal(sent)).quantize(_PLACES, rounding=ROUND_HALF_UP))


# --- the sections, from the tallies (node.federation.tallies) -------------------------


def _outcomes(states: dict[str, int]) -> Outcomes:
    """The outcome counts of a group from its count per current state."""
    return Outcomes(
        sent=sum(states.values()),
        won=states.get("won", 0),
        lost=states.get("lost", 0),
        declined=states.get("declined", 0),
        withdrawn=states.get("withdrawn", 0),
        in_progress=sum(states.get(s, 0) for s in _WORKED),
        awaiting=sum(states.get(s, 0) for s in _AWAITING),
    )


class _Counts:
    """The tallies of one report, each read once: per (side, key) of a dimension, the
    count per current state (``reached``: per status reached)."""

    def __init__(self, conn: sqlite3.Connection, q: ReportQuery) -> None:
        self.conn, self.q = conn, q
        self._read: dict[str, dict[tuple[str, str], dict[str, int]]] = {}

    def __call__(self, dim: str) -> dict[tuple[str, str], dict[str, int]]:
        if dim not in self._read:
            out: dict[tuple[str, str], dict[str, int]] = {}
            for side, key, state, n in tallies.counts(self.conn, dim, self.q.from_date, self.q.to_date, self.q.side):
                out.setdefault((side, key), {})[state] = n
            self._read[dim] = out
        return self._read[dim]


def _by(conn: sqlite3.Connection, q: ReportQuery, dim: str, counts: _Counts | None
        ) -> dict[tuple[str, str], dict[str, int]]:
    return (counts or _Counts(conn, q))(dim)


def side_totals(conn: sqlite3.Connection, q: ReportQuery, counts: _Counts | None = None) -> list[SideTotals]:
    """One row per side (only ``q.side`` when given), zeros included."""
    states: dict[str, dict[str, int]] = {}
    for (side, _), by_state in _by(conn, q, "connection", counts).items():
        mine = states.setdefault(side, {})
        for state, n in by_state.items():
            mine[state] = mine.get(state, 0) + n
    return [SideTotals(side, _outcomes(states.get(side, {}))) for side in SIDES if q.side in (None, side)]


def per_connection(conn: sqlite3.Connection, q: ReportQuery, counts: _Counts | None = None) -> list[ConnectionRow]:
    """Connections with referrals in scope, plus active connections; by name, then id."""
    known = {r["id"]: r for r in conn.execute("SELECT id, name, peer_node_id, state FROM connections")}
    rows: dict[str, dict[str, Any]] = {}

    def entry(cid: str) -> dict[str, Any]:
        c = known.get(cid)
        return rows.setdefault(cid, {
            "name": c["name"] if c else "",
            "peer": c["peer_node_id"] if c else tallies.peer_of_connection(conn, cid),
            "sent": 0, "received": 0, "states": dict.fromkeys(ALL_STATES, 0),
        })  # fmt: skip

    for (side, cid), by_state in _by(conn, q, "connection", counts).items():
        e = entry(cid)
        for state, n in by_state.items():
            e["sent" if side == "sender" else "received"] += n
            e["states"][state] = e["states"].get(state, 0) + n
    for cid, c in known.items():
        if c["state"] == "active":
            entry(cid)
    result = [
        ConnectionRow(cid, e["name"], e["peer"], e["sent"], e["received"], e["states"])
        for cid, e in rows.items()
    ]
    return sorted(result, key=lambda r: (r.connection_name.lower(), r.connection_id))


def per_agent(conn: sqlite3.Connection, q: ReportQuery, counts: _Counts | None = None) -> list[AgentRow]:
    """Referring agents (from each offer), per side; by side, then email. The name shown is
    the one on the agent's latest referral in scope."""
    groups = sorted(_by(conn, q, "agent", counts).items(), key=lambda g: (g[0][0] == "receiver", g[0][1]))
    return [
        AgentRow(side, email, tallies.agent_name(conn, side, email, q.from_date, q.to_date), _outcomes(by_state))
        for (side, email), by_state in groups
        if sum(by_state.values()) > 0
    ]


def per_status(conn: sqlite3.Connection, q: ReportQuery, counts: _Counts | None = None) -> list[StatusRow]:
    """Every state, per side (only ``q.side`` when given): current and reached counts."""
    current: dict[tuple[str, str], int] = {}
    for (side, _), by_state in _by(conn, q, "connection", counts).items():
        for state, n in by_state.items():
            current[(side, state)] = current.get((side, state), 0) + n
    current = {k: n for k, n in current.items() if n}
    reached = {(side, state): n for (side, _), by_state in _by(conn, q, "reached", counts).items()
               for state, n in by_state.items()}
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


def build_report(conn: sqlite3.Connection, q: ReportQuery) -> Report:
    counts = _Counts(conn, q)
    return Report(q, side_totals(conn, q, counts), per_connection(conn, q, counts), per_agent(conn, q, counts),
                  per_status(conn, q, counts))


# --- shapes ----------------------------------------------------------------------------


def report_json(report: Report) -> dict[str, Any]:
    q = report.query.params()
    return {
        "range": {"from": q["from"], "to": q["to"], "side": q["side"]},
        "totals": [{"side": t.side} | t.outcomes.as_dict() for t in report.totals],
        "connections": [
            {
                "connection_id": c.connection_id,
                "connection_name": c.connection_name,
                "peer_node_id": c.peer_node_id,
                "sent": c.sent,
                "received": c.received,
                "states": c.states,
            }
            for c in report.connections
        ],
        "agents": [
            {"side": a.side, "email": a.email, "name": a.name} | a.outcomes.as_dict()
            for a in report.agents
        ],
        "statuses": [
            {"side": s.side, "status": s.status, "current": s.current, "reached": s.reached}
            for s in report.statuses
        ],
    }


CSV_COLUMNS = ("section", "side", "subject", "subject_name", "peer_node_id", "metric", "value")
_OUTCOME_METRICS = ("sent", "won", "lost", "declined", "withdrawn", "in_progress", "awaiting", "conversion")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def report_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)

    def row(
        section: str, side: str, subject: str, name: str, peer: str, metric: str, value: Any
    ) -> None:
        writer.writerow([_cell(v) for v in (section, side, subject, name, peer, metric, value)])

    q = report.query.params()
    for key in ("from", "to", "side"):
        row("range", "", "", "", "", key, q[key])
    for t in report.totals:
        for metric, value in t.outcomes.as_dict().items():
            row("totals", t.side, "", "", "", metric, value)
    for c in report.connections:
        metrics = [("sent", c.sent), ("received", c.received), *((f"state.{k}", n) for k, n in c.states.items())]
        for metric, value in metrics:
            row("connection", "", c.connection_id, c.connection_name, c.peer_node_id, metric, value)
    for a in report.agents:
        for metric, value in a.outcomes.as_dict().items():
            row("agent", a.side, a.email, a.name, "", metric, value)
    for s in report.statuses:
        row("status", s.side, s.status, "", "", "current", s.current)
        if s.reached is not None:
            row("status", s.side, s.status, "", "", "reached", s.reached)
    return out.getvalue()


# --- routes ----------------------------------------------------------------------------
