"""CSV import, with its progress, and export: for admins, as the API's CSV routes.

An import is uploaded (multipart; CSRF in the action's query string) into a spool file
(0600, ``<data_dir>/csv-imports``, at most ``csv_import_max_bytes``), then run in the
background by ``node.http.csv_api.run_import``, the API's own streamed import: rows
checked a slice at a time, all written in one transaction or none. Its progress (bytes
checked of the file's size, rows ready) is kept in memory, in :class:`Imports`, under a
random id that only the admin who started it can open: ``/deals/import/{id}`` shows a
``<progress>`` element, kept current by ``static/csv_import.js`` from
``/deals/import/{id}/progress`` (without JavaScript, a Refresh link), and then the
outcome: records imported, or the rows at fault and nothing written. A node restart
forgets imports in flight (their spool and stage files are removed at start).

Export: contacts, and deals (all or one workflow's), as the API writes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from node.base.logs import get_logger
from node.crm import store as crm
from node.crm.csv_import import CsvImport, Kind
from node.crm.csv_stage import FOLDER
from node.crm.errors import CrmError, CsvImportError
from node.federation.runtime import Node
from node.http import csv_api
from node.http.crm_queries import ContactFilter, DealFilter
from node.http.csv_api import run_import
from node.web import uploads
from node.web.page_state import _SPOOL, IMPORTS, ImportRun
from node.web.views import Pages, View

pages = Pages()
log = get_logger("node.web.csv")

@pages.get("/deals/import", "csv_import.html", admin_only=True)
async def import_form(view: View) -> dict[str, Any]:
    return _form(view, {})


async def _spool(view: View, folder: Path) -> tuple[Kind, str, Path, int]:
    """Read the form: the kind, and the file into a spool file (removed if refused)."""
    limit = view.config.csv_import_max_bytes
    kind: Kind = "contacts"
    async for part in uploads.parts(view):
        if part.name == "kind" and not part.filename:
            value = await uploads.text(view, part)
            if value not in ("contacts", "deals"):
                raise CrmError("invalid", "Choose contacts or deals.", "kind")
            kind = "deals" if value == "deals" else "contacts"
        elif part.name == "file" and part.filename:
            spool = Spool(folder)
            try:
                async for piece in uploads.pieces(view, part):
                    if spool.size + len(piece) > limit:
                        raise CrmError("too_large", f"The file must be smaller than {_mb(limit)}.", "file")
                    spool.write(piece)
                spool.close()
            except BaseException:
                spool.discard()
                raise
            return kind, os.path.basename(part.filename.replace("\\", "/"))[:200], spool.path, spool.size
    raise CrmError("invalid", "Choose a CSV file to import.", "file")


def _mb(limit: int) -> str:
    return f"{limit / (1024 * 1024):g} MB"


def _form(view: View, errors: dict[str, str], kind: str = "contacts") -> dict[str, Any]:
    return {"errors": errors, "kind": kind, "max_size": _mb(view.config.csv_import_max_bytes)}


@pages.post("/deals/import", admin_only=True, raw_body=True)
async def start_import(view: View) -> web.StreamResponse:
    try:
        kind, name, path, size = await _spool(view, view.config.data_dir / FOLDER)
    except CrmError as exc:
        field = exc.field if exc.field in ("kind", "file") else "file"
        return view.render("csv_import.html", _form(view, {field: exc.message}),
                           status=413 if exc.code == "too_large" else 400)
    registry = view.request.app[IMPORTS]
    run = ImportRun(uuid.uuid4().hex, view.user.id, kind, name, size, time.monotonic())
    registry.add(run)
    task = asyncio.get_running_loop().create_task(_run(view.node, run, path))
    registry.tasks.add(task)
    task.add_done_callback(registry.tasks.discard)
    return view.redirect(f"/deals/import/{run.id}")


class Spool:
    """A file being uploaded, kept (0600) until its import has read it."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, exist_ok=True)
        self.path = folder / f"{_SPOOL}{uuid.uuid4().hex}.csv"
        self.size = 0
        self._file = os.fdopen(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")

    def write(self, piece: bytes) -> None:
        self.size += len(piece)
        self._file.write(piece)

    def close(self) -> None:
        self._file.close()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)

    @staticmethod
    async def pieces(path: Path) -> AsyncIterator[bytes]:
        """A spooled file's bytes, a piece at a time (local reads: quick)."""
        with path.open("rb") as spooled:
            while piece := spooled.read(uploads.PIECE_BYTES):
                yield piece


async def _run(node: Node, run: ImportRun, path: Path) -> None:
    config = node.config
    run.job = job = CsvImport(run.kind, data_dir=config.data_dir, now=node.clock.now(),
                              max_rows=config.csv_import_max_rows, max_bytes=config.csv_import_max_bytes)

    def checked(size: int) -> None:
        run.checked_bytes += size
        if run.checked_bytes >= run.size:
            run.state = "writing"

    try:
        run.imported = await run_import(node, job, Spool.pieces(path), checked)
        run.state = "done"
        log.info("csv import written", kind=run.kind, rows=run.imported)
    except CsvImportError as exc:
        run.state, run.errors, run.error_count = "refused", exc.errors, exc.total
    except CrmError as exc:
        run.state, run.message = "failed", exc.message
    except Exception as exc:  # the page must say it ended; the log says why, without data
        run.state, run.message = "failed", "The node hit an internal error; nothing was imported."
        log.error("csv import failed", error=type(exc).__name__)
    finally:
        run.imported = run.imported if run.state == "done" else 0
        run.job = None
        run.ended = time.monotonic()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _run_of(view: View) -> ImportRun:
    run = view.request.app[IMPORTS].runs.get(view.request.match_info["id"])
    if run is None or run.user_id != view.user.id:
        raise CrmError("not_found", "This import is not known here: it may be over an hour old, or the node "
                                    "restarted since. Nothing of an import cut short was written.")
    return run


@pages.get("/deals/import/{id}", "csv_progress.html", admin_only=True)
async def import_progress(view: View) -> dict[str, Any]:
    run = _run_of(view)
    return {"run": run, "progress": run.progress()}


@pages.get("/deals/import/{id}/progress", admin_only=True)
async def import_progress_json(view: View) -> web.StreamResponse:
    return web.json_response(_run_of(view).progress())


@pages.get("/deals/export", "csv_export.html", admin_only=True)
async def export_page(view: View) -> dict[str, Any]:
    return {"workflows": await view.node.db.read(crm.list_workflows)}


@pages.get("/deals/export/contacts.csv", admin_only=True)
async def export_contacts(view: View) -> web.StreamResponse:
    # streamed a page at a time, as the API's export (node.http.csv_api)
    return await csv_api.stream_contacts(view.request, view.node, ContactFilter())


@pages.get("/deals/export/deals.csv", admin_only=True)
async def export_deals(view: View) -> web.StreamResponse:
    name = view.request.query.get("workflow", "")
    query = DealFilter()
    if name:
        workflow = await view.node.db.read(lambda conn: crm.find_workflow_by_name(conn, name))
        if workflow is None:
            raise CrmError("not_found", f"There is no workflow named “{name[:200]}”.")
        query = DealFilter(workflow_id=workflow.id)
    return await csv_api.stream_deals(view.request, view.node, query)
