"""Reports: referrals by connection, by partner (deals partners created in the portal,
``node.crm.partner_report``), referring agent and status over a date range, with
conversion, two charts (referrals over time, the conversion funnel) and a CSV download.

The numbers are the admin API's (``node.federation.reporting``, and
``node.federation.report_trends`` for the charts); like the API's report, the page is
open to every signed-in user. The form's days are both included ("to" is the last day
shown), where the API's ``to`` is the first day left out; days are UTC days, as in the
API.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web

from node.crm.partner_report import by_partner
from node.federation.report_trends import GROUPS, Trend, funnels, over_time
from node.federation.reporting import (
    ALL_STATES,
    Report,
    ReportQuery,
    build_report,
    parse_query,
    report_csv,
)
from node.web.charts import Series, funnel, stacked_bars
from node.web.views import Pages, View

pages = Pages()

SIDE_WORDS = {"sender": "Sent by us", "receiver": "Received by us"}
GROUP_WORDS = {"won": "Won", "in_progress": "In progress", "awaiting": "Awaiting an answer",
               "closed": "Lost, declined or withdrawn"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: The years a report may start and end in (no referral is older than the node).
FIRST_YEAR, LAST_YEAR = 1970, 2999


def percent(conversion: str) -> str:
    """The report's conversion ("0.4286") as people read it ("42.9%")."""
    return f"{(Decimal(conversion) * 100).quantize(Decimal('0.1'))}%".replace(".0%", "%")


def _day(raw: str, errors: dict[str, str], name: str, words: str) -> date | None:
    if not raw:
        return None
    try:
        if not _DATE.match(raw):
            raise ValueError(raw)
        day = date.fromisoformat(raw)
    except ValueError:
        errors[name] = f"Enter the {words} as a date, for example 31 Mar 2026."
        return None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        errors[name] = f"Enter the {words} as a date between {FIRST_YEAR} and {LAST_YEAR}."
        return None
    return day


def read_form(view: View) -> tuple[dict[str, str], ReportQuery | None, dict[str, str]]:
    """The form's values (as typed), the report's query, and the form's errors."""
    query = view.request.query
    today = view.node.clock.now().astimezone(view.config.zone).date()
    if not any(k in query for k in ("from", "to", "side", "by")):
        # the last twelve months, this one included
        first = date(today.year - (today.month < 12), today.month % 12 + 1, 1)
        form = {"from": first.isoformat(), "to": "", "side": "", "by": ""}
    else:
        form = {k: query.get(k, "").strip() for k in ("from", "to", "side", "by")}
    errors: dict[str, str] = {}
    first_day = _day(form["from"], errors, "from", "first day")
    last_day = _day(form["to"], errors, "to", "last day")
    if first_day and last_day and last_day < first_day:
        errors["to"] = "The last day must be the same as or after the first day."
    if form["side"] not in ("", *SIDE_WORDS):
        errors["side"] = "Choose which referrals to show."
    if form["by"] not in ("", "week", "month"):
        errors["by"] = "Choose how to group the chart."
    if errors:
        return form, None, errors
    params = {"from": form["from"], "side": form["side"]}
    if last_day:
        params["to"] = (last_day + timedelta(days=1)).isoformat()
    return form, parse_query({k: v for k, v in params.items() if v}), errors


def trend_chart(trend: Trend) -> Any:
    weekly = trend.period == "week"
    labels, ticks = [], []
    for i, c in enumerate(trend.counts):
        labels.append(f"Week of {c.start.day} {c.start:%b %Y}" if weekly else f"{c.start:%B %Y}")
        new_year = i == 0 or c.start.year != trend.counts[i - 1].start.year
        ticks.append((f"{c.start.day} {c.start:%b}" if weekly else f"{c.start:%b}",
                      str(c.start.year) if new_year else ""))
    series = [Series(g, GROUP_WORDS[g]) for g in GROUPS]
    total = sum(c.total for c in trend.counts)
    return stacked_bars(
        "chart-trend", f"Referrals per {trend.period}",
        f"{total} referrals over {len(trend.counts)} {trend.period}s, each bar split by how the referrals "
        "turned out so far.",
        labels, [{g: c.group(g) for g in GROUPS} for c in trend.counts], series, ticks=ticks)


def funnel_charts(report_funnels: list[Any]) -> list[dict[str, Any]]:
    """Per side: its heading and its funnel chart."""
    charts = []
    for f in report_funnels:
        first = "Sent" if f.side == "sender" else "Received"
        steps = [(first, f.sent), ("Accepted", f.accepted), ("Won", f.won)]
        charts.append({"heading": SIDE_WORDS[f.side], "chart": funnel(
            f"chart-funnel-{f.side}", f"Conversion of referrals {SIDE_WORDS[f.side].lower()}",
            f"{f.sent} {first.lower()}, {f.accepted} accepted, {f.won} won.", steps)})
    return charts


def status_rows(report: Report) -> list[dict[str, Any]]:
    """One row per status with any referral, each side's current and reached counts."""
    rows: dict[str, dict[str, Any]] = {}
    for s in report.statuses:
        row = rows.setdefault(s.status, {"status": s.status})
        row[s.side] = (s.current, s.reached)
    order = {state: i for i, state in enumerate(ALL_STATES)}
    return [r for r in sorted(rows.values(), key=lambda r: order.get(r["status"], len(order)))
            if any(n for side in SIDE_WORDS for n in r.get(side, (0, 0)) if n)]


def connection_groups(states: dict[str, int]) -> dict[str, int]:
    return {
        "won": states.get("won", 0),
        "in_progress": states.get("accepted", 0) + states.get("in-progress", 0),
        "awaiting": sum(states.get(s, 0) for s in ("sent", "delivered", "received", "failed")),
        "closed": sum(states.get(s, 0) for s in ("lost", "declined", "withdrawn")),
    }


@pages.get("/reports", "reports.html")
async def reports(view: View) -> web.StreamResponse | dict[str, Any]:
    form, q, errors = read_form(view)
    context: dict[str, Any] = {"form": form, "errors": errors, "sides": SIDE_WORDS, "groups": GROUP_WORDS,
                               "percent": percent, "connection_groups": connection_groups}
    if q is None:
        return view.render("reports.html", {**context, "report": None}, status=400)
    today = view.node.clock.now().date()
    by = form["by"] or None

    def read(conn: Any) -> tuple[Report, Trend, list[Any], list[Any]]:
        from_partners = [] if q.side == "sender" else by_partner(conn, q.from_date, q.to_date)
        return (build_report(conn, q), over_time(conn, q, today, by), funnels(conn, q),  # type: ignore[arg-type]
                from_partners)

    report, trend, report_funnels, from_partners = await view.node.db.read(read)
    csv_params = {k: v for k, v in form.items() if v and k != "by"}
    return {**context, "report": report, "trend": trend, "trend_chart": trend_chart(trend),
            "funnels": funnel_charts(report_funnels), "statuses": status_rows(report),
            "csv_query": csv_params, "partners": from_partners}


@pages.get("/reports/referrals.csv")
async def report_download(view: View) -> web.StreamResponse:
    form, q, errors = read_form(view)
    if q is None:
        return view.render("reports.html", {"form": form, "errors": errors, "sides": SIDE_WORDS,
                                            "groups": GROUP_WORDS, "report": None}, status=400)
    text = report_csv(await view.node.db.read(lambda conn: build_report(conn, q)))
    span = f"{form['from'] or 'start'}_{form['to'] or 'now'}"
    return web.Response(text=text, content_type="text/csv", charset="utf-8",
                         headers={"Content-Disposition": f'attachment; filename="referrals-{span}.csv"'})
