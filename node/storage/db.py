"""The node's SQLite database: one file, WAL, versioned migrations, group commit.

Writers call :meth:`Database.write` with a function of the connection. Writes that arrive
while a transaction is committing are run together in the next transaction and committed
with one fsync (group commit). A write's future resolves only after its transaction is
durably committed, so "acknowledged" always means "on disk". Each write runs in its own
SAVEPOINT: one that raises is rolled back alone and its caller gets the exception, while
the others in the batch still commit.

Where the work happens: the write functions are Python and hold the GIL whatever thread
runs them, so they run on the event loop, back to back (handing each batch to a thread
cost a third of the node's CPU per request, measured with bench/inbox_throughput.py). So
does the COMMIT: with ``synchronous=NORMAL`` it only writes the transaction to the WAL
file (tens of microseconds), and handing it to a thread and back cost more CPU than that
(a lone write took 445 to 530 µs of CPU and 9.5 voluntary context switches with its
COMMIT on the worker, 360 to 470 µs and 6.5 on the loop). SQLite's automatic checkpoint,
which would run inside such a COMMIT now and then with two syncs, is off: checkpoints run
on a thread and a connection of their own (:mod:`node.storage.checkpoint`).

Durability is pipelined. The COMMIT does not wait for the disk: the worker thread then
calls ``fdatasync`` on the WAL, and only then do the batch's writes return; meanwhile the
loop already runs the next batch, whose COMMIT waits for that sync (so writes that arrive
while the disk syncs share one commit). One sync covers every commit written before it
began. SQLite itself syncs the WAL before it checkpoints, and the database after. On the
disks we measured, the sync is most of a commit's time, so the writer no longer stands
still for it (``bench/inbox_throughput.py``). The syncs, and the COMMITs of writes that go
alone, run on one thread (see :class:`node.storage.worker.Worker`).

A write too long to share a transaction (a CSV import's rows, moved in one statement from
a staging file) goes through :meth:`Database.write_alone`: its transaction holds only it, and
it runs on the worker thread, where SQLite releases the GIL, so the loop goes on serving
reads and requests meanwhile; writes that arrive wait for its COMMIT, as they would for
any transaction. Files it names are attached for its duration (ATTACH cannot happen inside
a transaction, and no other write should see them).

Reads use a second, read-only connection on the loop (WAL lets it read while the writer
commits). A committed batch is visible to it a little before it is on disk, so
:meth:`Database.read` returns only once everything the read may have seen is synced:
nobody acts on, or answers with, what a power cut could still take back. If the disk
refuses a sync, what was committed since the last good one may not be on it, and no later
sync can vouch for it: every write and read waiting for that sync fails, and so does every
one after (:class:`DiskFailure`), until the node is restarted.

Several processes may write one database (``shared=True``: the node process and its inbox
fronts, see ``node.http.fronts``). Their write transactions take turns through a lock file
next to the database (``flock``, see :class:`node.storage.writer_lock.WriterLock`): taken
on the loop only when it is free and our own last sync is done (so it is never held through
a sync or while the loop finishes other work), waited for on a thread of its own (so our
syncs and reads never queue behind another process's turn), and released as soon as the
COMMIT returns. SQLite's own busy handler would sleep on the loop, in steps of
milliseconds. What another process commits is visible before it is synced, so a shared
database's :meth:`Database.read` also syncs the WAL when anyone committed since the last
sync (``PRAGMA data_version``). A write needs no more: its own sync covers every commit it
could have read. A refused sync is final for every process: the others are told
(:meth:`Database.fail`), since the kernel reports a write-back error only once per
descriptor.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from node.base.logs import failure_fields, get_logger
from node.storage.checkpoint import Checkpointer
from node.storage.disk import DiskFailure, WalSyncer
from node.storage.sqlite import connect, migrate
from node.storage.worker import Worker
from node.storage.writer_lock import WriterLock

T = TypeVar("T")
log = get_logger("node.db")


class _Alone:
    """A write of :meth:`Database.write_alone`: in a transaction of its own, on the worker,
    with ``attach`` (schema name: file) attached."""

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], attach: dict[str, Path]) -> None:
        self.fn = fn
        self.attach = attach

    def __call__(self, conn: sqlite3.Connection) -> Any:
        return self.fn(conn)


def _attach(conn: sqlite3.Connection, attach: dict[str, Path]) -> None:
    for name, path in attach.items():
        if not name.isidentifier():
            raise ValueError(f"bad schema name {name!r}")
        conn.execute(f"ATTACH DATABASE ? AS {name}", (str(path),))


def _detach(conn: sqlite3.Connection, attach: dict[str, Path]) -> None:
    """Detach those of ``attach`` that are attached."""
    if attach:
        attached = {row[1] for row in conn.execute("PRAGMA database_list")}
        for name in attach.keys() & attached:
            conn.execute(f"DETACH DATABASE {name}")


def _fail_writes(writes: list[tuple[Any, asyncio.Future[Any]]], exc: BaseException) -> None:
    """Fail every write of ``writes`` (function, future) still waiting.

    The error goes without its traceback, which holds the writer task's own frame: a caller
    that clears the frames of an error it got (apscheduler does, for a job that raised, so
    a failed ``Delivery.tick`` would) finalizes that coroutine, and then no write ever
    runs again. A write refused while another program held the database's lock did that."""
    exc = exc.with_traceback(None)
    for _, future in writes:
        if not future.done():
            future.set_exception(exc)


class Database:
    """Async access to one SQLite file. Use :meth:`read` and :meth:`write`."""

    def __init__(self, path: Path | str, *, shared: bool = False) -> None:
        self.path = Path(path)
        #: Other processes write this database too (see the module's docstring).
        self._lock = WriterLock(self.path) if shared else None
        # Threads of their own, so that neither a COMMIT (which holds the lock) nor our
        # syncs wait for them: one waits for another process's turn, one syncs for reads.
        self._lock_waiter = Worker("sqlite-lock") if shared else None
        self._read_syncer = Worker("sqlite-read-sync") if shared else None
        self._executor = Worker("sqlite")
        self._conn = self._executor.run(lambda: connect(self.path))
        try:
            self._executor.run(lambda: migrate(self._conn))
        except BaseException:  # e.g. a schema newer than ours: let go of everything
            self._executor.run(self._conn.close)
            for worker in (self._executor, self._lock_waiter, self._read_syncer):
                if worker is not None:
                    worker.stop()
            if self._lock is not None:
                self._lock.close()
            raise
        # Checkpoints run on a thread of their own, not in our COMMITs (on the loop):
        # see node.storage.checkpoint.
        self._executor.run(lambda: self._conn.execute("PRAGMA wal_autocheckpoint=0"))
        self._checkpoints = Checkpointer(self.path)
        self._wal = WalSyncer(self._conn)
        self._reader = connect(self.path)
        self._reader.execute("PRAGMA query_only=ON")
        #: The reader's ``data_version`` when the last sync for a read began.
        self._seen_version = self._data_version()
        self._wal.sync()
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        # Commits are numbered: ``_started`` COMMITs were begun, ``_committed`` returned,
        # and the WAL was synced after commit number ``_synced``. Committed batches wait in
        # ``_unsynced`` (number, batch, outcomes) for their sync.
        self._started = 0
        self._committed = 0
        self._synced = 0
        self._unsynced: deque[
            tuple[int, list[tuple[Any, asyncio.Future[Any]]], list[tuple[bool, Any]]]
        ] = deque()
        self._sync_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._sync_wake: asyncio.Event | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._failure: OSError | None = None
        #: The batch waiting for its turn (shared): failed at once if the disk fails.
        self._turn_batch: list[tuple[Any, asyncio.Future[Any]]] = []
        #: Called with the error when the disk refuses a sync (see :meth:`_fail`).
        self.on_failure: list[Callable[[OSError], None]] = []
        #: The event loop's time of the latest write asked of this process: background
        #: work that can wait (``node.crm.indexing``) waits for a quiet moment.
        self.last_write_at = 0.0

    # -- synchronous use (CLI, tests, start-up) --------------------------------------

    def run(self, fn: Callable[[sqlite3.Connection], T], *, attach: dict[str, Path] | None = None) -> T:
        """Run ``fn`` in one transaction on the worker thread and wait for it; ``attach``
        as for :meth:`write_alone`."""
        return self._executor.run(lambda: self._transaction(fn, attach or {}))

    def _transaction(self, fn: Callable[[sqlite3.Connection], T], attach: dict[str, Path]) -> T:
        if self._lock is not None:
            self._lock.acquire()
        try:
            _attach(self._conn, attach)
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        finally:
            _detach(self._conn, attach)
            if self._lock is not None:
                self._lock.release()
        self._wal.sync()
        if self._checkpoints.committed():
            self._checkpoints.run_sync()
        return result

    # -- asynchronous use --------------------------------------------------------------

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the read connection. It returns once whatever ``fn`` may have
        seen is durable: every commit begun before it ended is synced."""
        self._check_usable()
        try:
            return fn(self._reader)
        finally:  # a refusal is an answer too: it waits like a result
            if self._synced < self._started:
                await self._wait_synced(self._started)
            if self._lock is not None:
                await self._sync_others()

    def _data_version(self) -> int:
        return int(self._reader.execute("PRAGMA data_version").fetchone()[0])

    async def _sync_others(self) -> None:
        """Sync the WAL if any connection (another process's, or our writer) committed
        since the last such sync: a read may have seen it. On a thread of its own: a
        COMMIT queued on the worker (holding the writer lock) never waits for it."""
        assert self._read_syncer is not None
        version = self._data_version()
        if version == self._seen_version:
            return
        try:
            await self._read_syncer.call(self._wal.sync)
        except OSError as exc:
            self._fail(exc)
            raise self._disk_failure() from None
        self._check_usable()  # failed meanwhile, elsewhere
        self._seen_version = max(self._seen_version, version)

    async def _wait_synced(self, number: int) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sync_waiters.append((number, future))
        await future

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise self._disk_failure()

    def _disk_failure(self) -> DiskFailure:
        failure = DiskFailure("the disk refused to sync the database; restart the node")
        failure.__cause__ = self._failure
        return failure

    async def write(self, fn: Callable[[sqlite3.Connection], T], *, background: bool = False) -> T:
        """Run ``fn`` in a transaction shared with other concurrent writes; return once
        that transaction is committed. A ``background`` write does not count as activity
        (:attr:`last_write_at`)."""
        loop = asyncio.get_running_loop()
        if self._closed:
            raise RuntimeError("database is closed")
        self._check_usable()
        if not background:
            self.last_write_at = loop.time()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((fn, future))
        if self._writer is None:
            self._wake = asyncio.Event()
            self._writer = loop.create_task(self._write_loop())
        assert self._wake is not None
        self._wake.set()
        return await future

    async def write_alone(
        self, fn: Callable[[sqlite3.Connection], T], *, attach: dict[str, Path] | None = None,
        background: bool = False,
    ) -> T:
        """Like :meth:`write`, but ``fn`` has its transaction to itself and runs on the
        worker thread, with ``attach`` (schema name: database file) attached: for one long
        statement (see the module's docstring). Writes that arrive meanwhile wait for it."""
        return await self.write(_Alone(fn, dict(attach or {})), background=background)

    def _next_batch(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> list[tuple[Any, asyncio.Future[Any]]]:
        """The writes of ``batch`` to run now: those before the first write that goes
        alone, or that write by itself. The rest go back to the front of the queue."""
        alone = next((i for i, (fn, _) in enumerate(batch) if isinstance(fn, _Alone)), None)
        if alone is None:
            return batch
        cut = alone or 1
        self._pending[:0] = batch[cut:]
        if self._pending and self._wake is not None:
            self._wake.set()
        return batch[:cut]

    async def _write_loop(self) -> None:
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
            batch = self._next_batch(batch)
            alone = batch[0][0] if isinstance(batch[0][0], _Alone) else None
            try:
                if self._lock is not None:
                    self._turn_batch = batch
                    try:
                        await self._take_turn()
                    finally:
                        self._turn_batch = []
                    self._check_usable()  # the disk failed while we waited: no commit
                    if alone is None:  # what arrived while we waited joins in
                        pending, self._pending = self._pending, []
                        batch += self._next_batch(pending)
                if alone is None:
                    outcomes = self._run_batch([fn for fn, _ in batch])
                    if self._synced < self._committed:
                        # Commit after the sync under way: it could not cover this one,
                        # and what arrives meanwhile shares the next.
                        try:
                            await self._wait_synced(self._committed)
                        except DiskFailure:  # refused: this batch is never committed
                            raise self._disk_failure() from None
                    self._started += 1
                    number = self._started
                    self._commit()  # on the loop: see the module's docstring
                else:
                    outcomes = await self._executor.call(functools.partial(self._run_alone, alone))
                    self._started += 1
                    number = self._started
                    await self._executor.call(self._commit)
            except BaseException as exc:  # the commit itself failed: nobody is durable
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if self._lock is not None:
                    self._lock.release()
                if alone is not None:
                    _detach(self._conn, alone.attach)
                self._committed = self._started  # nothing of this one is left to sync
                _fail_writes(batch, exc)
                self._wake_syncer()
                continue
            if alone is not None:
                _detach(self._conn, alone.attach)
            # Written, not yet durable: the sync loop answers the batch; the next one runs.
            self._committed = number
            if self._failure is not None:  # no sync will ever vouch for it
                _fail_writes(batch, self._disk_failure())
                continue
            self._unsynced.append((number, batch, outcomes))
            self._wake_syncer()
            if self._checkpoints.committed(alone=alone is not None):
                await self._checkpoint()
            else:  # let the sync loop start this sync before the next batch runs
                await asyncio.sleep(0)

    async def _checkpoint(self) -> None:
        """Checkpoint before the next batch (see :mod:`node.storage.checkpoint`); with the
        writer's turn held, if the database is shared. One that cannot run is skipped."""
        try:
            if self._lock is None:
                await self._checkpoints.run()
                return
            await self._take_turn()
            try:
                await self._checkpoints.run()
            finally:
                self._lock.release()
        except Exception as exc:  # the disk failed meanwhile: the writes say so
            log.warning("WAL checkpoint skipped", **failure_fields(exc))

    async def _take_turn(self) -> None:
        """Hold the writer lock. Taken on the loop only when it is free, so it is never
        held while the loop finishes other work; while another process writes, a thread of
        its own waits for it (and the batch grows meanwhile)."""
        assert self._lock is not None and self._lock_waiter is not None
        lock = self._lock
        if self._synced < self._committed:  # never hold the turn while our last sync runs
            await self._wait_synced(self._committed)
        while not lock.try_acquire():
            # Not on the worker: the syncs that answer our writes must not wait for
            # another process's turn.
            await self._lock_waiter.call(lock.wait_free)

    def _commit(self) -> None:
        try:
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:  # before the lock goes: nobody waits on SQLite's
                self._conn.execute("ROLLBACK")
            raise
        finally:
            if self._lock is not None:
                self._lock.release()

    def _wake_syncer(self) -> None:
        if self._sync_task is None:
            self._sync_wake = asyncio.Event()
            self._sync_task = asyncio.get_running_loop().create_task(self._sync_loop())
        assert self._sync_wake is not None
        self._sync_wake.set()

    async def _sync_loop(self) -> None:
        """Sync the WAL whenever commits are waiting for it; then answer their writes
        (and reads waiting on them). One sync covers all commits that returned before it."""
        assert self._sync_wake is not None
        while True:
            await self._sync_wake.wait()
            self._sync_wake.clear()
            target = self._committed
            if target > self._synced and self._failure is None:
                version = self._data_version() if self._lock is not None else None
                try:
                    await self._executor.call(self._wal.sync)
                except OSError as exc:
                    self._fail(exc)
                else:
                    if self._failure is None:  # not failed meanwhile, by another process's word
                        self._answer_upto(target)
                        self._synced = target
                        if version is not None:
                            self._seen_version = max(self._seen_version, version)
                self._sync_wake.set()  # commits may have returned while we synced
            if self._failure is None:
                self._release_readers()
            if self._failure is not None or (
                self._closed
                and (self._writer is None or self._writer.done())
                and self._synced >= self._started
            ):
                self._fail_waiting_readers()
                return

    @property
    def failed(self) -> bool:
        """The disk refused a sync (here, or in another process that told us)."""
        return self._failure is not None

    def fail(self, exc: OSError) -> None:
        """Take no more reads or writes, as if our own sync had been refused: for a
        database shared with a process whose sync was (see ``node.http.fronts``)."""
        self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        """The disk refused a sync. The commits it should have covered are in SQLite's
        view of the file but perhaps not on the disk, and a later sync that succeeds proves
        nothing about them: fail every write and read waiting for a sync, and every one
        after (see :class:`DiskFailure`)."""
        if self._failure is not None:  # told once is enough
            return
        self._failure = exc
        log.critical("the disk refused to sync the database; restart the node", **failure_fields(exc))
        failure = self._disk_failure()
        while self._unsynced:
            _fail_writes(self._unsynced.popleft()[1], failure)
        _fail_writes(self._pending, failure)
        self._pending = []
        _fail_writes(self._turn_batch, failure)
        self._fail_waiting_readers()
        if self._sync_wake is not None:
            self._sync_wake.set()  # the sync loop ends
        for listener in self.on_failure:  # last: whatever they do, nobody is left waiting
            try:
                listener(exc)
            except Exception as error:
                log.error("a disk failure listener failed", **failure_fields(error))

    def _fail_waiting_readers(self) -> None:
        failure = DiskFailure("the database closed or failed before this read was synced")
        for _, future in self._sync_waiters:
            if not future.done():
                future.set_exception(failure)
        self._sync_waiters = []

    def _answer_upto(self, target: int) -> None:
        while self._unsynced and self._unsynced[0][0] <= target:
            _, batch, outcomes = self._unsynced.popleft()
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _release_readers(self) -> None:
        """Wake the reads whose commits are synced."""
        if not self._sync_waiters:
            return
        waiting = []
        for number, future in self._sync_waiters:
            if number > self._synced:
                waiting.append((number, future))
            elif not future.done():
                future.set_result(None)
        self._sync_waiters = waiting

    def _run_alone(self, write: _Alone) -> list[tuple[bool, Any]]:
        """On the worker: attach the write's files and run it in a transaction of its own;
        the caller commits it, then detaches them."""
        try:
            _attach(self._conn, write.attach)
            return self._run_batch([write])
        except BaseException:
            _detach(self._conn, write.attach)
            raise

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
                    if not conn.in_transaction:
                        # SQLite rolled the whole transaction back (it does on a full
                        # database): the batch fails with this error, which says why.
                        raise
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
        if self._sync_task is not None and self._sync_wake is not None:
            self._sync_wake.set()
            await self._sync_task  # it syncs what is committed and answers it, then returns
        self.close_sync()

    def close_sync(self) -> None:
        def _close() -> None:
            self._conn.close()

        self._reader.close()

        try:
            self._checkpoints.close()  # before the writer: the last connection closed checkpoints
            self._executor.run(_close)
        finally:
            self._executor.stop()
            for worker in (self._lock_waiter, self._read_syncer):
                if worker is not None:
                    worker.stop()
            self._wal.close()
            if self._lock is not None:
                self._lock.close()
