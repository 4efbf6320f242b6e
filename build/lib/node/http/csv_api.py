"""Admin-API routes for CSV files of the CRM: deals and contacts exported (filtered as
their lists are) and imported. All are for admins.

An export is streamed: read and sent a page at a time (``EXPORT_PAGE`` records per read,
then other requests' turn), so a million contacts take no more of the node's memory than
a hundred (``bench/scale_data.py``). Its header names the custom fields in use, found
first among the records that have any.

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
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from aiohttp import web

from node.base.errors import ApiError
from node.base.logs import failure_fields, get_logger
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
#: Records an export reads at a time (one read, then other requests' turn).
EXPORT_PAGE = 500

#: ``page(after, size, custom_only)``: a read of the next records of an export.
Page = Callable[[tuple[str, str] | None, int, bool], Callable[[Any], list[Any]]]


async def export_deals(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    return await stream_deals(request, node, query_model(request, DealFilter))


async def export_contacts(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    return await stream_contacts(request, node, query_model(request, ContactFilter))


async def stream_deals(request: web.Request, node: Node, query: DealFilter) -> web.StreamResponse:
    """The deals ``query`` selects as a CSV file, streamed (the console's export too)."""
    def page(after: tuple[str, str] | None, size: int, custom_only: bool = False) -> Any:
        return lambda conn: find_deals(conn, query, after=after, limit=size, custom_only=custom_only)

    custom = await _custom_fields(node, page)
    names = await node.db.read(csv_io.DealNames.read)
    return await _stream(request, node, f"deals-{node.clock.now():%Y-%m-%d}.csv", csv_io.deals_header(custom),
                         page, lambda deals: csv_io.deal_rows(deals, custom, names))


async def stream_contacts(request: web.Request, node: Node, query: ContactFilter) -> web.StreamResponse:
    """The contacts ``query`` selects as a CSV file, streamed (the console's export too)."""
    def page(after: tuple[str, str] | None, size: int, custom_only: bool = False) -> Any:
        return lambda conn: crm.list_contacts(conn, q=query.q, after=after, limit=size, custom_only=custom_only)

    custom = await _custom_fields(node, page)
    return await _stream(request, node, f"contacts-{node.clock.now():%Y-%m-%d}.csv",
                         csv_io.contacts_header(custom), page, lambda contacts: csv_io.contact_rows(contacts, custom))


async def _pages(node: Node, page: Page, *, custom_only: bool = False) -> AsyncIterator[list[Any]]:
    """The records of an export, a page at a time, each read on its own (a keyset on
    created_at and id: a record made meanwhile may come or not, none comes twice)."""
    after = None
    while True:
        records = await node.db.read(page(after, EXPORT_PAGE, custom_only))
        if records:
            yield records
        if len(records) < EXPORT_PAGE:
            return
        after = (records[-1].created_at, records[-1].id)
        await asyncio.sleep(0)  # other requests' turn


async def _custom_fields(node: Node, page: Page) -> list[str]:
    """The custom fields the export's records use (its header's last columns), from those
    records that have any; a filter that names something unknown is refused here, before
    anything is sent."""
    names: set[str] = set()
    async for records in _pages(node, page, custom_only=True):
        names.update(name for r in records for name in r.custom_fields)
    return sorted(names)


async def _stream(request: web.Request, node: Node, filename: str, header: list[str], page: Page,
                  rows: Callable[[list[Any]], Iterable[list[str]]]) -> web.StreamResponse:
    """Send the export as it is read, a page at a time: the node holds one page, whatever
    the number of records, and a slow reader slows the reading (each write waits for the
    connection to take it). A failure once the answer has started cuts the connection, so
    that a cut-short file is never taken for a whole one."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/csv; charset=utf-8", "Content-Disposition": f'attachment; filename="{filename}"',
                 "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
    await response.prepare(request)
    sent = 0
    try:
        await response.write(csv_io.csv_text([header], escape=False).encode("utf-8"))
        async for records in _pages(node, page):
            await response.write(csv_io.csv_text(rows(records)).encode("utf-8"))
            sent += len(records)
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        raise  # the client went away: nothing to tell it
    except Exception as exc:
        log.error("csv export cut short", rows=sent, **failure_fields(exc))
        if request.transport is not None:
            request.transport.close()
    return response


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
