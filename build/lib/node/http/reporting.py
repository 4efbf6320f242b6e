"""The admin API's routes for reports; what they count is in :mod:`node.federation.reporting`,
loaded with the first report asked for (0.5 MiB that an idle node need not hold)."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from node.crm.fields import IsoDate
from node.federation.runtime import Node
from node.http.api import Caller, In, Route


class ReportParams(In):
    """The report's query string; ``parse_query`` adds the rule that ``to`` is after ``from``."""

    from_: IsoDate | None = Field(default=None, alias="from")
    to: IsoDate | None = None
    side: Literal["sender", "receiver"] | None = None


async def get_report(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    from node.federation.reporting import build_report, parse_query, report_json

    q = parse_query(request.query)
    return report_json(await node.db.read(lambda conn: build_report(conn, q)))


async def get_report_csv(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    from node.federation.reporting import build_report, parse_query, report_csv

    q = parse_query(request.query)
    text = report_csv(await node.db.read(lambda conn: build_report(conn, q)))
    span = f"{q.params()['from'] or 'start'}_{q.params()['to'] or 'now'}"
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="referrals-{span}.csv"'},
    )


ROUTES: list[Route] = [
    Route(
        "GET",
        "/api/v1/reports/referrals",
        get_report,
        "Referral report over [from, to) (YYYY-MM-DD, UTC days; optional side): totals, per connection, "
        "per referring agent, per status, with conversion (won / sent)",
        query=ReportParams,
    ),
    Route(
        "GET",
        "/api/v1/reports/referrals.csv",
        get_report_csv,
        "The referral report as CSV (text/csv): one number per row with a section column",
        query=ReportParams,
        answers="text/csv",
    ),
]
