"""The search indexer: indexes the contacts and deals written since it last ran, off the
write path (see migration 41 and ``node.crm.store.search``).

It looks every ``interval_s`` (and when kicked) and, while rows wait, indexes
:data:`BATCH` at a time in a transaction of its own on the database's worker thread
(``Database.write_alone``): SQLite tokenizes there without the GIL, so the event loop goes
on serving meanwhile, and other writes wait for one batch at most (about 20 ms).

It waits for a quiet moment: while writes keep coming (an inbox taking a burst of
referrals, a CSV import) it indexes nothing, unless :data:`BEHIND` rows wait, and resumes
once no write has come for :data:`QUIET_S`. Searches stay exact meanwhile (the waiting
rows are looked at one by one), just slower the more there are.
"""

from __future__ import annotations

import asyncio
import contextlib

from node.base.logs import failure_fields, get_logger
from node.base.waits import woken
from node.crm.store import search
from node.storage.db import Database

log = get_logger("node.search")

#: Rows indexed per transaction.
BATCH = 200
#: No write for this long: the moment to index.
QUIET_S = 0.5
#: This many rows waiting: index them, quiet or not.
BEHIND = 5000


class SearchIndexer:
    def __init__(self, db: Database, interval_s: float) -> None:
        self.db, self.interval_s = db, interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Rows indexed since the start.
        self.indexed = 0

    def kick(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="search-indexer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self, *, wait_for_quiet: bool = False) -> int:
        """Index what waits now (with ``wait_for_quiet``, only while no write comes, or
        while :data:`BEHIND` rows or more wait); how many rows."""
        done = 0
        loop = asyncio.get_running_loop()
        while True:
            waiting = await self.db.read(lambda conn: search.waiting(conn, cap=BEHIND))
            if not waiting:
                break
            if wait_for_quiet and waiting < BEHIND and loop.time() - self.db.last_write_at < QUIET_S:
                break
            n = await self.db.write_alone(lambda conn: search.index_pending(conn, BATCH), background=True)
            done += n
            self.indexed += n  # counted as soon as done: a reader may see nothing wait before the loop ends
            if n == 0:
                break
            await asyncio.sleep(0)
        return done

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.run_once(wait_for_quiet=True)
            except Exception as exc:  # the database is failing: try again next round
                log.error("search indexing failed", **failure_fields(exc))
            since = loop.time() - self.db.last_write_at
            wait = self.interval_s if since >= QUIET_S else min(self.interval_s, QUIET_S - since + 0.01)
            await woken(self._wake, wait)
            self._wake.clear()
