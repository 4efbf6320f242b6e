"""``GET /metrics`` (Prometheus text format) and the middleware that times every request.

``/metrics`` is on the node's one listener, behind a token of its own: Prometheus sends
``Authorization: Bearer <token>``, the token ``<data_dir>/metrics-token`` holds (mode 0600,
written at the first start; see :func:`node.base.tokens.metrics_token`). That token opens
nothing else, and admin-API tokens do not open ``/metrics``. Wrong tokens count with the
admin API's (``auth_failures_per_min``). With inbox fronts, a front passes ``/metrics`` to
the node process, which adds up the counts of every process (see :mod:`node.base.metrics`).

What is counted as it happens is in :class:`node.base.metrics.NodeMetrics`; what is read
when Prometheus asks (outbox depth and age per peer, the mail queue, inbox fronts, the size
of the database and its WAL) is gathered here, per scrape. There is no SMS queue: the node
sends no SMS, so there is nothing to report.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aiohttp import web

from node.base.errors import ApiError, api_error_response
from node.base.metrics import status_class
from node.base.ratelimit import retry_after
from node.base.tokens import hash_token, token_prefix
from node.federation.runtime import Node
from node.http.appkeys import METRICS_TOKEN_HASH, NODE, TOKEN_GUESSES
from node.http.clients import client_address
from node.mail.queue import QueueState, queue_state
from node.storage.queues import PeerQueue, outbox_queues
from protocol.models import parse_ts
from protocol.wire import BASE_PATH

routes = web.RouteTableDef()

#: Paths that are neither the inbox, the API, pages nor static files.
OPS_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


def route_group(request: web.Request) -> str:
    """The ``group`` label of a request: inbox, api, pages, static or other (the rest:
    discovery, health, metrics, and paths no route matches)."""
    path = request.path
    if request.match_info.http_exception is not None or path in OPS_PATHS:
        return "other"
    if path.startswith(BASE_PATH + "/"):
        return "inbox"
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/static/"):
        return "static"
    if path.startswith("/.well-known/"):
        return "other"
    return "pages"


@web.middleware
async def timing_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Time every request into ``refnode_http_request_seconds`` by route group."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        if NODE in request.app:
            request.app[NODE].metrics.http_seconds.labels(route_group(request), status_class(status)).observe(
                time.perf_counter() - started)


@dataclass(frozen=True)
class Scraped:
    """What one scrape read from the database and the files."""

    now: datetime
    outbox: list[PeerQueue]
    mail: QueueState
    fronts: dict[str, int] | None
    database_bytes: int
    wal_bytes: int


class ScrapedCollector:
    """A prometheus-client collector of what one scrape read (the library is loaded with the
    first scrape, see :mod:`node.base.metrics`)."""

    def __init__(self, scraped: Scraped) -> None:
        self.s = scraped

    def collect(self) -> Iterable[object]:
        from prometheus_client.metrics_core import GaugeMetricFamily

        s = self.s
        pending = GaugeMetricFamily("refnode_outbox_pending", "Outbox items waiting to be delivered, by peer.",
                                    labels=["peer"])
        age = GaugeMetricFamily("refnode_outbox_oldest_pending_age_seconds",
                                "Age of the oldest outbox item waiting for a peer (0 when none waits).",
                                labels=["peer"])
        for queue in s.outbox:
            pending.add_metric([queue.peer_node_id], queue.pending)
            age.add_metric([queue.peer_node_id], _age_s(s.now, queue.oldest_created_at))
        yield pending
        yield age
        mail = GaugeMetricFamily("refnode_mail_queue", "Mail not sent yet: waiting (all of it) and failing "
                                 "(tried at least once).", labels=["state"])
        mail.add_metric(["waiting"], s.mail.waiting)
        mail.add_metric(["failing"], s.mail.failing)
        yield mail
        yield GaugeMetricFamily("refnode_mail_sent_last_24h", "Mail sent in the last 24 hours.", value=s.mail.sent_24h)
        yield GaugeMetricFamily("refnode_mail_oldest_waiting_age_seconds", "Age of the oldest mail not sent "
                                "yet (0 when none waits).", value=_age_s(s.now, s.mail.oldest_waiting_at))
        fronts = GaugeMetricFamily("refnode_inbox_fronts", "Inbox front processes: configured "
                                   "(inbox_workers) and connected to the node process.", labels=["state"])
        fronts.add_metric(["configured"], (s.fronts or {}).get("configured", 0))
        fronts.add_metric(["connected"], (s.fronts or {}).get("connected", 0))
        yield fronts
        size = GaugeMetricFamily("refnode_database_bytes", "Size of the database file (main) and of its "
                                 "write-ahead log (wal).", labels=["file"])
        size.add_metric(["main"], s.database_bytes)
        size.add_metric(["wal"], s.wal_bytes)
        yield size


def _age_s(now: datetime, created_at: str | None) -> float:
    return max(0.0, (now - parse_ts(created_at)).total_seconds()) if created_at else 0.0


def _file_bytes(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


async def scrape(node: Node) -> Scraped:
    now = node.clock.now()
    outbox, mail = await node.db.read(lambda conn: (outbox_queues(conn), queue_state(conn, now)))
    path = node.db.path
    database_bytes, wal_bytes = await asyncio.to_thread(
        lambda: (_file_bytes(path), _file_bytes(Path(f"{path}-wal"))))
    return Scraped(now, outbox, mail, node.fronts.status() if node.fronts is not None else None,
                   database_bytes, wal_bytes)


def _check_token(request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise ApiError(401, "unauthenticated", "send 'Authorization: Bearer <token>' with the token of "
                       "<data_dir>/metrics-token")
    token = header[7:].strip()
    guesses, guesser = request.app[TOKEN_GUESSES], {"client": client_address(request), "prefix": token_prefix(token)}
    if wait_s := guesses.charge(**guesser):
        raise ApiError(429, "rate_limited", f"too many wrong tokens; try again in {retry_after(wait_s)} s",
                       retry_after_s=wait_s)
    if not hmac.compare_digest(hash_token(token), request.app[METRICS_TOKEN_HASH]):
        raise ApiError(401, "unauthenticated", "that is not the metrics token (<data_dir>/metrics-token)")
    guesses.refund(**guesser)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    try:
        _check_token(request)
    except ApiError as exc:
        return api_error_response(exc)
    node = request.app[NODE]
    collector = ScrapedCollector(await scrape(node))
    body, content_type = await asyncio.to_thread(node.metrics.expose, collector, request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
