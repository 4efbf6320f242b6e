"""The node's SQLite database: one file, WAL, versioned migrations, group commit.

Writers call :meth:`Database.write` with a function of the connection. Writes that arrive
while a transaction is committing are run together in the next transaction and committed
with one fsync (group commit). A write's future resolves only after its transaction is
durably committed, so "acknowledged" always means "on disk". Each write runs in its own
SAVEPOINT: one that raises is rolled back alone and its caller gets the exception, while
the others in the batch still commit.

Where the work happens: the write functions are Python and hold the GIL whatever thread
runs them, so they run on the event loop, back to back (handing each batch to a thread
cost a third of the node's CPU per request, measured with bench/inbox_throughput.py). Only
the COMMIT, whose fsync releases the GIL, runs on a worker thread: the loop serves other
requests while the disk syncs. Reads use a second, read-only connection on the loop (WAL
lets it read while the writer commits); they see what committed writes wrote.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

T = TypeVar("T")

Migration = Callable[[sqlite_utils.Database], None]
#: Registered migrations, by version. Modules register theirs with :func:`migration`;
#: ``node.schema`` imports every module that does.
MIGRATIONS: dict[int, tuple[str, Migration]] = {}


def migration(version: int, name: str) -> Callable[[Migration], Migration]:
    def register(fn: Migration) -> Migration:
        if version in MIGRATIONS:
            raise RuntimeError(f"migration {version} registered twice")
        MIGRATIONS[version] = (name, fn)
        return fn

    return register


def connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # a commit is durable once it returns
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Run every registered migration newer than the database; return the new version."""
    import node.schema  # noqa: F401  (registers the migrations)

    current = conn.execute("PRAGMA user_version").fetchone()[0]
    db = sqlite_utils.Database(conn)
    for version in sorted(v for v in MIGRATIONS if v > current):
        _, fn = MIGRATIONS[version]
        conn.execute("BEGIN IMMEDIATE")
        try:
            fn(db)
            conn.execute(f"PRAGMA user_version={int(version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = version
    return current


class Database:
    """Async access to one SQLite file. Use :meth:`read` and :meth:`write`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn = self._executor.submit(connect, self.path).result()
        self._executor.submit(migrate, self._conn).result()
        self._reader = connect(self.path)
        self._reader.execute("PRAGMA query_only=ON")
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._lock = threading.Lock()

    # -- synchronous use (CLI, tests, start-up) --------------------------------------

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one transaction on the worker thread and wait for it."""
        return self._executor.submit(self._transaction, fn).result()

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return result

    # -- asynchronous use --------------------------------------------------------------

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return fn(self._reader)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a transaction shared with other concurrent writes; return once
        that transaction is committed."""
        loop = asyncio.get_running_loop()
        if self._closed:
            raise RuntimeError("database is closed")
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((fn, future))
        if self._writer is None:
            self._wake = asyncio.Event()
            self._writer = loop.create_task(self._write_loop())
        assert self._wake is not None
        self._wake.set()
        return await future

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                if self._closed:
                    return
                continue
            if self._closed:
                self._wake.set()  # come round once more to drain, then stop
            try:
                outcomes = self._run_batch([fn for fn, _ in batch])
                await loop.run_in_executor(self._executor, self._commit)
            except BaseException as exc:  # the commit itself failed: nobody is durable
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _run_batch(self, fns: list[Callable[[sqlite3.Connection], Any]]) -> list[tuple[bool, Any]]:
        """Run every write of a batch in one open transaction; the caller commits it."""
        conn = self._conn
        outcomes: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fn in fns:
                conn.execute("SAVEPOINT w")
                try:
                    outcomes.append((True, fn(conn)))
                    conn.execute("RELEASE w")
                except Exception as exc:
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    outcomes.append((False, exc))
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

    async def close(self) -> None:
        self._closed = True
        if self._writer is not None and self._wake is not None:
            self._wake.set()
            await self._writer  # it commits what is queued, then returns
        self.close_sync()

    def close_sync(self) -> None:
        def _close() -> None:
            self._conn.close()

        self._reader.close()

        try:
            self._executor.submit(_close).result()
        finally:
            self._executor.shutdown(wait=True)
