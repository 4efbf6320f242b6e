"""Admin-API routes for CSV files of the CRM: deals and contacts exported (filtered as
their lists are) and imported. All are for admins.

An import is all or nothing, and streamed: the file is read as it arrives, a piece at a
time (``PIECE_BYTES``), and its rows are checked as they come, a slice at a time
(``CHECK_SLICE_S`` of work, on the read connection, then a turn for other requests), and
kept in a scratch file (:mod:`node.crm.csv_import`). More rows than
``csv_import_max_rows`` or more bytes than ``csv_import_max_bytes`` are refused with 413
``too_large`` as soon as they arrive. When the file is over and every row passed, all of
them are written in one transaction, copied from the scratch file by SQLite on the
database's worker thread (``Database.write_alone``), so the event loop keeps serving
meanwhile. The answer is a summary: ``{"imported": N, "ids": [...]}``, the ids of the first
100 records in file order. A refusal is a 400 whose ``error.detail.errors`` lists the
first 100 problems ``[{row, field, message}]`` (the header is row 1) and
``error.detail.error_count`` counts them all; nothing is written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from node.base.errors import ApiError
from node.base.logs import get_logger
from node.crm import csv_io
from node.crm import store as crm
from node.crm.csv_import import CsvImport, Kind
from node.crm.errors import CsvImportError
from node.federation.runtime import Node
from node.http.api import Caller, Route, query_model
from node.http.bodies import BodyTimeout
from node.http.crm_queries import ContactFilter, DealFilter, find_deals

log = get_logger("node.csv_api")

#: The most of the request body read at once.
PIECE_BYTES = 64 * 1024
#: Work done checking rows before other requests get a turn.
CHECK_SLICE_S = 0.005


def _csv(text: str, filename: str) -> web.Response:
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def export_deals(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    query = query_model(request, DealFilter)
    text = await node.db.read(lambda conn: csv_io.export_deals_csv(conn, find_deals(conn, query)))
    return _csv(text, f"deals-{node.clock.now():%Y-%m-%d}.csv")


async def export_contacts(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    query = query_model(request, ContactFilter)
    text = await node.db.read(
        lambda conn: csv_io.export_contacts_csv(conn, crm.list_contacts(conn, q=query.q))
    )
    return _csv(text, f"contacts-{node.clock.now():%Y-%m-%d}.csv")


def _check_content_type(request: web.Request) -> None:
    if request.content_type != "text/csv":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the CSV file as the request body with Content-Type: text/csv "
            f"(not {request.content_type})",
        )


def _refused(exc: CsvImportError) -> ApiError:
    return ApiError(
        400,
        "invalid",
        f"nothing was imported: {exc.message}",
        field=exc.field,
        errors=[e._asdict() for e in exc.errors],
        error_count=exc.total,
    )


async def _check(node: Node, job: CsvImport) -> None:
    """Check the rows received, a slice at a time, letting other requests run between."""
    while job.pending:
        await node.db.read(lambda conn: job.check(conn, budget_s=CHECK_SLICE_S))
        await asyncio.sleep(0)


async def run_import(node: Node, job: CsvImport, pieces: AsyncIterator[bytes],
                     progress: Callable[[int], None] | None = None) -> int:
    """Feed ``job`` the file a piece at a time, checking its rows as they come (reads
    only; ``progress`` is told each piece's size once its rows are checked), then write
    them all in one transaction; close the job. Returns how many records were written;
    raises CsvImportError (nothing written) for a file with a wrong row."""
    write: asyncio.Future[int] | None = None
    try:
        async for piece in pieces:
            job.feed(piece)
            await _check(node, job)
            if progress is not None:
                progress(len(piece))
        job.end()
        await _check(node, job)
        job.outcome()
        # Once queued, the write runs even if this task is cancelled: shielded, with
        # the stage closed only when it is done.
        write = asyncio.ensure_future(node.db.write_alone(job.move, attach=job.attach))
        return await asyncio.shield(write)
    finally:
        if write is None or write.done():
            job.close()
        else:
            write.add_done_callback(lambda _: job.close())


async def _body(request: web.Request, timeout_s: float) -> AsyncIterator[bytes]:
    pieces = request.content.iter_chunked(PIECE_BYTES)
    while True:
        # However long the file, each piece must come within body_timeout_s.
        try:
            async with asyncio.timeout(timeout_s):
                piece = await anext(pieces, None)
        except TimeoutError:
            raise BodyTimeout(request, timeout_s) from None
        if piece is None:
            return
        yield piece


async def _import(request: web.Request, node: Node, kind: Kind) -> dict[str, Any]:
    """Read the file as it arrives, check its rows as they come (reads only), then write
    them all in one transaction (see the module's docstring)."""
    _check_content_type(request)
    config = node.config
    job = CsvImport(kind, data_dir=config.data_dir, now=node.clock.now(),
                    max_rows=config.csv_import_max_rows, max_bytes=config.csv_import_max_bytes)  # fmt: skip
    started = time.perf_counter()
    try:
        imported = await run_import(node, job, _body(request, config.body_timeout_s))
    except CsvImportError as exc:
        raise _refused(exc) from None
    log.info("csv import written", kind=kind, rows=imported, took_s=round(time.perf_counter() - started, 3),
             move_s=round(job.move_s, 3))  # fmt: skip
    return {"imported": imported, "ids": job.ids}


async def import_deals(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    return await _import(request, node, "deals")


async def import_contacts(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    return await _import(request, node, "contacts")


# fmt: off
ROUTES: list[Route] = [
    Route("GET", "/api/v1/export/deals.csv", export_deals,
          "Deals as CSV (text/csv), filtered as GET /deals; workflow and stage by name, owner by email",
          admin_only=True, query=DealFilter, answers="text/csv"),
    Route("GET", "/api/v1/export/contacts.csv", export_contacts, "Contacts as CSV (text/csv); ?q",
          admin_only=True, query=ContactFilter, answers="text/csv"),
    Route("POST", "/api/v1/import/deals", import_deals,
          "Import deals from a CSV body (text/csv), streamed, all or nothing; import their contacts first. "
          "Answers {imported, ids (the first 100)}",
          admin_only=True, status=201, csv_body=True),
    Route("POST", "/api/v1/import/contacts", import_contacts,
          "Import contacts from a CSV body (text/csv), streamed, all or nothing. Answers {imported, ids "
          "(the first 100)}", admin_only=True, status=201, csv_body=True),
]
# fmt: on
