"""What the console's pages keep while the node runs, made at start (``app.cleanup_ctx``)
so that the page modules themselves load with their first request (:mod:`node.http.lazy`):
the sign-in limiter, the CSV imports in progress (``node.web.csv_pages``), and the
clearing of upload parts left by a stopped node (``node.web.documents_pages``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from node.base.ratelimit import FailureLimiter
from node.crm import document_files as files
from node.crm.csv_stage import FOLDER
from node.http.appkeys import NODE

if TYPE_CHECKING:
    from node.crm.csv_import import CsvImport, Kind
    from node.crm.errors import RowError

SIGNIN_GUESSES = web.AppKey("signin_guesses", FailureLimiter)


async def guess_limiter(app: web.Application) -> AsyncIterator[None]:
    """``app.cleanup_ctx``: the sign-in limiter, on the node's clock."""
    app[SIGNIN_GUESSES] = FailureLimiter("sign-in", limit=30, window_s=600.0, clock=app[NODE].clock)
    yield


#: Finished imports kept for their pages, and for how long.
KEEP = 50
KEEP_S = 3600.0
_SPOOL = "upload-"


@dataclass
class ImportRun:
    """One import's progress and outcome, as its page shows them."""

    id: str
    user_id: str
    kind: Kind
    file_name: str
    size: int
    started: float
    checked_bytes: int = 0
    state: str = "checking"  # then "writing", and "done", "refused" or "failed"
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    message: str = ""
    ended: float | None = None
    job: CsvImport | None = None

    @property
    def rows_ready(self) -> int:
        return self.job.staged if self.job is not None else self.imported

    def progress(self) -> dict[str, Any]:
        return {"state": self.state, "value": self.checked_bytes if self.state == "checking" else self.size,
                "max": max(self.size, 1), "rows": self.rows_ready, "imported": self.imported,
                "finished": self.state in ("done", "refused", "failed")}


class Imports:
    """The imports of this process: started, watched, and cancelled at shutdown."""

    def __init__(self) -> None:
        self.runs: dict[str, ImportRun] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def add(self, run: ImportRun) -> None:
        finished = sorted((r for r in self.runs.values() if r.ended is not None), key=lambda r: r.ended or 0)
        now = time.monotonic()
        for old in finished[: max(0, len(finished) - KEEP)] + [r for r in finished if now - (r.ended or now) > KEEP_S]:
            self.runs.pop(old.id, None)
        self.runs[run.id] = run


IMPORTS = web.AppKey("csv_imports", Imports)


async def imports(app: web.Application) -> AsyncIterator[None]:
    """``app.cleanup_ctx``: the import registry; spool files of a stopped node go."""
    spool = app[NODE].config.data_dir / FOLDER
    for path in spool.glob(_SPOOL + "*") if spool.is_dir() else []:
        path.unlink(missing_ok=True)
    app[IMPORTS] = registry = Imports()
    yield
    for task in list(registry.tasks):
        task.cancel()
    for task in list(registry.tasks):
        with contextlib.suppress(BaseException):
            await task


async def parts_cleared(app: web.Application) -> AsyncIterator[None]:
    """``app.cleanup_ctx``: the part files of uploads cut short when the node stopped go."""
    files.clear_parts(app[NODE].config.documents_dir)
    yield
