"""The database's durability contract: a write returns, and a read answers, only once the
WAL holding it has been synced; the next batch runs meanwhile and commits after the sync;
a failed sync fails what waits for it and everything after; processes that share the
database take turns to write, and a read never returns another's commit unsynced.

The disk is the edge here: ``os.fdatasync`` is wrapped so a test can hold a sync (or fail
one) and see what the node does in the meantime. Everything else is real: the node's
Database on a SQLite file, its threads, its migrations.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from node.storage import checkpoint
from node.storage.db import Database
from node.storage.disk import DiskFailure, WalSyncer
from node.storage.writer_lock import WriterLock


class HeldDisk:
    """``os.fdatasync`` that waits for the test's go-ahead (or fails) before syncing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = os.fdatasync
        self.entered = threading.Event()
        self.go = threading.Event()
        self.go.set()
        self.fail_next = False
        self.calls = 0
        self.files: list[str] = []
        monkeypatch.setattr(os, "fdatasync", self.fdatasync)

    def fdatasync(self, fd: int) -> None:
        self.calls += 1
        self.files.append(os.readlink(f"/proc/self/fd/{fd}"))
        self.entered.set()
        self.go.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise OSError(errno.EIO, "injected: the disk refused the sync")
        self.real(fd)


    async def hold_write(self, db: Database, key: str) -> asyncio.Future[str]:
        """Write ``key`` and wait until its batch is committed and its sync is held."""
        self.go.clear()
        write = asyncio.ensure_future(db.write(insert(key)))
        await wait_for(self.entered.is_set)
        return write


def count_rows(db: Database) -> asyncio.Future[int]:
    return asyncio.ensure_future(db.read(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0]))


@pytest.fixture
async def held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A database on a file, and the disk under it, whose syncs a test can hold or fail."""
    db = make_db(tmp_path)
    disk = HeldDisk(monkeypatch)
    yield db, disk
    disk.go.set()
    await db.close()


def make_db(tmp_path: Path) -> Database:
    db = Database(tmp_path / "node.db")
    db.run(lambda conn: conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)"))
    return db


def committed(path: Path, key: str) -> bool:
    """What another connection sees: the row is committed (whether or not synced)."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT 1 FROM t WHERE k = ?", (key,)).fetchone() is not None
    finally:
        conn.close()


def insert(key: str):  # type: ignore[no-untyped-def]
    return lambda conn: conn.execute("INSERT INTO t (k) VALUES (?)", (key,)) and key


async def wait_for(check) -> None:  # type: ignore[no-untyped-def]
    for _ in range(500):  # 5 s
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def run_behind(db: Database, key: str) -> asyncio.Future[str]:
    """Write ``key`` behind a held sync; return once its batch has run (not committed)."""
    ran = threading.Event()

    def write(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t (k) VALUES (?)", (key,))
        ran.set()
        return key

    behind = asyncio.ensure_future(db.write(write))
    await wait_for(ran.is_set)
    return behind


async def test_write_returns_only_after_its_sync_and_the_next_batch_runs_meanwhile(
    held: tuple[Database, HeldDisk],
) -> None:
    db, disk = held
    first = await disk.hold_write(db, "a")
    # Committed and visible to others, but the sync is held: not acknowledged.
    assert committed(db.path, "a")
    await asyncio.sleep(0.05)
    assert not first.done()
    # A read that sees "a" waits for the same sync.
    read = count_rows(db)
    await asyncio.sleep(0.05)
    assert not read.done()
    # The next write runs while the first sync is held; its commit comes after that sync
    # (it could not be synced sooner), so writes arriving meanwhile share one commit.
    second = await run_behind(db, "b")
    assert not committed(db.path, "b")
    assert not first.done() and not second.done()
    disk.go.set()
    assert await first == "a"
    assert await second == "b"
    assert committed(db.path, "b")
    assert await read == 1  # it ran before "b" was there, and answered once "a" was synced


async def test_failed_sync_fails_what_waits_for_it_and_everything_after(
    held: tuple[Database, HeldDisk],
) -> None:
    db, disk = held
    disk.fail_next = True
    write = await disk.hold_write(db, "a")
    read = count_rows(db)
    await asyncio.sleep(0.05)
    disk.go.set()
    with pytest.raises(DiskFailure) as refused:
        await write
    assert isinstance(refused.value.__cause__, OSError)
    assert refused.value.__cause__.errno == errno.EIO
    with pytest.raises(DiskFailure):
        await read  # it saw "a", which no sync vouched for
    # A later sync that works proves nothing about "a": the database takes no more.
    with pytest.raises(DiskFailure):
        await db.write(insert("b"))
    with pytest.raises(DiskFailure):
        await db.read(lambda conn: 1)


async def test_a_read_that_refuses_waits_for_the_sync_too(
    held: tuple[Database, HeldDisk],
) -> None:
    db, disk = held
    write = await disk.hold_write(db, "a")

    def refuse_if_there(conn: sqlite3.Connection) -> None:
        if conn.execute("SELECT 1 FROM t WHERE k = 'a'").fetchone():
            raise LookupError("already there")

    read = asyncio.ensure_future(db.read(refuse_if_there))
    await asyncio.sleep(0.05)
    assert not read.done()  # its refusal rests on "a", not yet on disk
    disk.go.set()
    with pytest.raises(LookupError):
        await read
    assert await write == "a"


async def test_the_wal_synced_is_the_one_sqlite_writes_even_through_a_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "node.db").symlink_to(real / "node.db")
    disk = HeldDisk(monkeypatch)
    db = Database(tmp_path / "node.db")  # the file is made through the link
    try:
        db.run(lambda conn: conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)"))
        assert disk.files[-1] == str(real / "node.db-wal")  # run() syncs, the real WAL
        assert await db.write(insert("a")) == "a"
        assert disk.files[-1] == str(real / "node.db-wal")
        assert all(name == str(real / "node.db-wal") for name in disk.files)
    finally:
        await db.close()
    assert committed(real / "node.db", "a")


async def test_idle_read_does_not_wait_and_close_syncs_what_is_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make_db(tmp_path)
    disk = HeldDisk(monkeypatch)
    assert await db.write(insert("a")) == "a"
    calls = disk.calls
    assert await count_rows(db) == 1
    assert disk.calls == calls  # nothing unsynced: the read did not wait for a sync
    pending = [asyncio.ensure_future(db.write(insert(k))) for k in ("b", "c", "d")]
    await asyncio.sleep(0)
    await db.close()
    assert [await p for p in pending] == ["b", "c", "d"]
    assert committed(db.path, "d")


def finishes(fn, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    """``fn()`` in a thread: its result, or its exception, or AssertionError if it hangs."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{fn} hung"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("result")


def test_a_closed_database_refuses_work_instead_of_hanging(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    db.close_sync()
    with pytest.raises(RuntimeError):
        finishes(lambda: db.run(lambda conn: 1))
    with pytest.raises(RuntimeError):
        finishes(db.close_sync)


def test_a_write_whose_loop_ended_does_not_stop_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's event loop ends (an error, a timeout) while its write is syncing: the
    sync finishes with nobody to tell, and the database still works and closes."""
    db = make_db(tmp_path)
    disk = HeldDisk(monkeypatch)

    async def give_up() -> None:
        disk.go.clear()
        write = asyncio.ensure_future(db.write(insert("a")))
        await wait_for(disk.entered.is_set)
        write.cancel()

    asyncio.run(give_up())  # the loop is closed, the sync still held
    disk.go.set()
    assert finishes(lambda: db.run(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0])) == 1
    finishes(db.close_sync)


async def test_a_caller_that_clears_the_frames_of_a_failed_commit_does_not_stop_the_writer(
    tmp_path: Path,
) -> None:
    """A batch whose COMMIT fails (here a deferred foreign key; also a lock another program
    holds, or a full disk) fails its writes. A caller that clears the frames of the error
    it got, as apscheduler does for a job that raised (the delivery tick), must not take
    the writer down with it: the next write still runs."""
    import traceback

    db = make_db(tmp_path)
    try:
        await db.write(lambda conn: conn.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)"))
        await db.write(lambda conn: conn.execute("CREATE TABLE c (pid INTEGER REFERENCES p(id))"))

        def orphan(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA defer_foreign_keys = ON")
            conn.execute("INSERT INTO c (pid) VALUES (999)")

        with pytest.raises(sqlite3.IntegrityError) as failed:
            await db.write(orphan)
        traceback.clear_frames(failed.value.__traceback__)
        await asyncio.wait_for(db.write(lambda conn: conn.execute("INSERT INTO p (id) VALUES (1)")), 5)
        assert await db.read(lambda conn: conn.execute("SELECT count(*) FROM p").fetchone()[0]) == 1
    finally:
        await asyncio.wait_for(db.close(), 10)  # a dead writer would never let it finish


# -- one database, several writing processes (inbox fronts) --------------------------------


async def test_shared_writers_take_turns_and_lose_nothing(tmp_path: Path) -> None:
    """Two shared Databases on one file (each with its own lock descriptor, as two
    processes have) write at once: every write of both lands, none fails as locked."""
    make_db(tmp_path).close_sync()
    one = Database(tmp_path / "node.db", shared=True)
    two = Database(tmp_path / "node.db", shared=True)
    try:
        writes = [db.write(insert(f"{name}{i}")) for i in range(200) for name, db in (("a", one), ("b", two))]
        assert len(await asyncio.gather(*writes)) == 400
        assert await count_rows(one) == 400 and await count_rows(two) == 400
    finally:
        await one.close()
        await two.close()


def locked_elsewhere(tmp_path: Path) -> tuple[Database, WriterLock]:
    """A shared Database, and the writer lock held as another process would hold it."""
    make_db(tmp_path).close_sync()
    other = WriterLock(tmp_path / "node.db")
    other.acquire()
    return Database(tmp_path / "node.db", shared=True), other


async def test_a_shared_database_waits_for_the_writer_lock_off_the_loop(tmp_path: Path) -> None:
    """While another process holds the writer lock, writes wait for it on a thread of
    their own: the loop keeps running, and the write lands once the lock is let go."""
    db, other = locked_elsewhere(tmp_path)
    try:
        write = asyncio.ensure_future(db.write(insert("a")))
        ticks = 0
        for _ in range(20):  # the loop is free while the write waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not write.done()
        assert not committed(db.path, "a")
        other.release()
        assert await asyncio.wait_for(write, 5) == "a"
    finally:
        other.close()
        await db.close()


async def test_a_shared_read_syncs_what_another_process_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read may see another process's commit before that process synced it: a shared
    database syncs the WAL before such a read returns, and only then."""
    make_db(tmp_path).close_sync()
    db = Database(tmp_path / "node.db", shared=True)
    disk = HeldDisk(monkeypatch)
    try:
        assert await count_rows(db) == 0
        calls = disk.calls
        assert await count_rows(db) == 0
        assert disk.calls == calls  # nothing new: no sync
        outsider = sqlite3.connect(db.path, isolation_level=None)
        outsider.execute("PRAGMA synchronous=NORMAL")  # commits without syncing, as ours do
        outsider.execute("INSERT INTO t (k) VALUES ('x')")
        outsider.close()
        disk.go.clear()
        read = count_rows(db)
        await wait_for(disk.entered.is_set)
        assert not read.done()  # it waits for the sync
        disk.go.set()
        assert await read == 1
        assert disk.calls == calls + 1 and disk.files[-1].endswith("node.db-wal")
    finally:
        disk.go.set()
        await db.close()


def test_the_writer_lock_dies_with_its_process(tmp_path: Path) -> None:
    """A process killed while it holds the writer lock (SIGKILL) does not leave it held."""
    path = tmp_path / "node.db"
    code = (
        "import sys, time; from node.storage.writer_lock import WriterLock; lock = WriterLock(sys.argv[1]); lock.acquire();"
        " print('held', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        lock = WriterLock(path)
        assert not lock.try_acquire()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert lock.try_acquire()
        lock.release()
        lock.close()
        assert oct(path.with_name("node.db-writer").stat().st_mode & 0o777) == "0o600"
    finally:
        child.kill()
        child.wait()


def other_process_commits(path: Path, key: str) -> None:
    """A commit by another connection that does not sync, as a front's does until its own
    sync: visible at once, durable only later."""
    outsider = sqlite3.connect(path, isolation_level=None)
    outsider.execute("PRAGMA synchronous=NORMAL")
    outsider.execute("INSERT INTO t (k) VALUES (?)", (key,))
    outsider.close()


def two_writers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Database, Database, threading.Event, threading.Event]:
    """Two shared Databases on one file, as two processes have them; every sync of the
    first (``slow``) is held until ``go`` is set, and ``held`` says one is."""
    make_db(tmp_path).close_sync()
    slow = Database(tmp_path / "node.db", shared=True)
    quick = Database(tmp_path / "node.db", shared=True)
    real_sync = WalSyncer.sync
    held, go = threading.Event(), threading.Event()

    def sync(self: WalSyncer) -> None:
        if self is slow._wal:
            held.set()
            go.wait(10)
        real_sync(self)

    monkeypatch.setattr(WalSyncer, "sync", sync)
    return slow, quick, held, go


async def all_refused(*waiting: Any) -> None:
    """Each of ``waiting`` (reads and writes) fails with DiskFailure, within 2 s."""
    for each in waiting:
        with pytest.raises(DiskFailure):
            await asyncio.wait_for(each, 2)


async def test_a_refused_sync_is_final_for_shared_reads_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux reports a write-back error once per descriptor: the sync after a refused one
    may succeed. A read whose sync queued behind the refused one must still fail, not vouch
    for what the refused sync should have covered."""
    make_db(tmp_path).close_sync()
    db = Database(tmp_path / "node.db", shared=True)
    disk = HeldDisk(monkeypatch)
    try:
        other_process_commits(db.path, "x")
        disk.go.clear()
        first = count_rows(db)
        await wait_for(disk.entered.is_set)
        second = count_rows(db)
        await asyncio.sleep(0.05)  # its sync waits behind the first
        disk.fail_next = True
        disk.go.set()
        await all_refused(first, second, db.write(insert("y")))
    finally:
        disk.go.set()
        await db.close()


async def test_a_shared_writer_does_not_hold_the_lock_through_its_own_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one process's sync is held (a slow disk for it alone), another process still
    gets its turn to write: a writer takes the lock only once its own last sync is done."""
    slow, quick, held, go = two_writers(tmp_path, monkeypatch)
    try:
        first = asyncio.ensure_future(slow.write(insert("s1")))
        await wait_for(held.is_set)  # s1 committed, its sync held
        second = asyncio.ensure_future(slow.write(insert("s2")))
        await asyncio.sleep(0.05)  # s2 is queued behind s1's sync
        assert await asyncio.wait_for(quick.write(insert("q1")), 2) == "q1"
        assert not first.done() and not second.done()
        go.set()
        assert await first == "s1" and await second == "s2"
        assert await count_rows(quick) == 3
    finally:
        go.set()
        await slow.close()
        await quick.close()


async def test_a_shared_read_does_not_sync_again_for_our_own_synced_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_db(tmp_path).close_sync()
    db = Database(tmp_path / "node.db", shared=True)
    disk = HeldDisk(monkeypatch)
    try:
        for key in ("a", "b", "c"):
            calls = disk.calls
            await db.write(insert(key))
            await count_rows(db)
            assert disk.calls == calls + 1  # the write's own sync, and no second one for the read
    finally:
        await db.close()


async def test_a_failure_told_while_a_batch_waits_to_commit_fails_it_uncommitted(
    held: tuple[Database, HeldDisk],
) -> None:
    """Another process's refused sync is told (``fail``) while a sync of ours is held and
    the next batch, already run, waits for it to commit: that batch is rolled back, never
    committed, and its write, the first one and the reads waiting on them all fail."""
    db, disk = held
    first = await disk.hold_write(db, "a")
    read = count_rows(db)  # waits for the held sync
    second = await run_behind(db, "b")
    db.fail(OSError(errno.EIO, "a front's sync was refused"))
    await all_refused(first, read, second)
    disk.go.set()
    await asyncio.sleep(0.05)
    assert not committed(db.path, "b")


async def test_a_refused_read_sync_fails_every_read_and_write_waiting(tmp_path: Path, monkeypatch) -> None:
    """A shared read's own sync is refused while a write commits and another read waits for
    that commit: the write and both reads fail, none is left waiting."""
    make_db(tmp_path).close_sync()
    db = Database(tmp_path / "node.db", shared=True)
    disk = HeldDisk(monkeypatch)
    try:
        await db.write(insert("a"))  # the sync loop exists, idle
        other_process_commits(db.path, "x")
        disk.entered.clear()
        disk.go.clear()
        r2 = count_rows(db)  # its _sync_others sync is held
        await wait_for(disk.entered.is_set)
        write = asyncio.ensure_future(db.write(insert("b")))  # COMMIT queued behind it
        await wait_for(lambda: db._started == 2)
        r1 = count_rows(db)  # waits for commit 2's sync
        await asyncio.sleep(0.02)
        disk.fail_next = True
        disk.go.set()
        await all_refused(r2, write, r1)
    finally:
        disk.go.set()
        await db.close()


async def test_a_batch_waiting_for_its_turn_fails_at_once_and_never_commits(tmp_path: Path) -> None:
    """The disk fails (told by another process) while a batch waits for another process's
    turn: the write fails at once, and its transaction is never committed."""
    db, other = locked_elsewhere(tmp_path)
    try:
        write = asyncio.ensure_future(db.write(insert("late")))
        await asyncio.sleep(0.05)  # waiting for the lock on the sqlite-lock thread
        db.fail(OSError(errno.EIO, "a front's sync was refused"))
        await asyncio.sleep(0.05)
        pending_after_fail = not write.done()
        other.release()
        with pytest.raises(DiskFailure):
            await asyncio.wait_for(write, 2)
        was_committed = committed(db.path, "late")
        assert not pending_after_fail and not was_committed, (pending_after_fail, was_committed)
    finally:
        other.close()
        await db.close()


async def test_a_writer_never_holds_the_lock_through_a_reads_sync(tmp_path: Path, monkeypatch) -> None:
    """A shared read syncs for another process's commit while our writer takes its turn:
    the COMMIT does not queue behind that sync, so the other process is not kept waiting."""
    slow, quick, held, go = two_writers(tmp_path, monkeypatch)
    try:
        other_process_commits(slow.path, "x")
        read = count_rows(slow)  # _sync_others: its sync is held
        await wait_for(held.is_set)
        write = asyncio.ensure_future(slow.write(insert("s1")))
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(quick.write(insert("q1")), 1)
            waited = time.monotonic() - t0
        except TimeoutError:
            waited = None
        go.set()
        await read
        await write
        assert waited is not None, "the other writer waited > 1 s for a read's sync"
    finally:
        go.set()
        await slow.close()
        await quick.close()


async def test_a_failure_listener_that_raises_leaves_nobody_waiting(tmp_path: Path, monkeypatch) -> None:
    """A failure listener (a front or the node process telling the others) that raises
    does not stop the write waiting for the refused sync from failing, nor close()."""
    db = make_db(tmp_path)
    disk = HeldDisk(monkeypatch)

    def listener(exc: OSError) -> None:
        raise RuntimeError("listener broke")

    db.on_failure.append(listener)
    try:
        disk.go.clear()
        disk.entered.clear()
        write = asyncio.ensure_future(db.write(insert("a")))
        await wait_for(disk.entered.is_set)
        disk.fail_next = True
        disk.go.set()
        with pytest.raises(DiskFailure):
            await asyncio.wait_for(asyncio.shield(write), 2)
    finally:
        disk.go.set()
        await asyncio.wait_for(db.close(), 2)


# -- a write too long to share a transaction -----------------------------------------------


async def test_a_write_alone_runs_off_the_loop_with_its_file_attached(tmp_path: Path) -> None:
    """``write_alone`` runs its function on the worker, in a transaction of its own, with
    another database file attached: the loop answers reads meanwhile, a write that arrives
    waits for its COMMIT and then lands, and the file is detached afterwards, also when the
    function fails (which then writes nothing)."""
    db = make_db(tmp_path)
    extra = tmp_path / "extra.db"
    with sqlite3.connect(extra) as conn:
        conn.execute("CREATE TABLE s (k TEXT)")
        conn.executemany("INSERT INTO s VALUES (?)", [("s1",), ("s2",), ("s3",)])
    conn.close()
    inside, go = threading.Event(), threading.Event()

    def long(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t SELECT k FROM extra.s")
        inside.set()
        go.wait(5)  # a statement that takes long; the GIL is free meanwhile, as in SQLite
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t SELECT k || 'x' FROM extra.s")
        raise ValueError("no")

    def schemas(conn: sqlite3.Connection) -> list[str]:
        return [row[1] for row in conn.execute("PRAGMA database_list")]

    try:
        alone = asyncio.ensure_future(db.write_alone(long, attach={"extra": extra}))
        await wait_for(inside.is_set)
        assert await asyncio.wait_for(count_rows(db), 1) == 0  # served, not blocked
        later = asyncio.ensure_future(db.write(insert("later")))
        await asyncio.sleep(0.05)
        assert not later.done() and not committed(db.path, "later")
        go.set()
        assert await asyncio.wait_for(alone, 5) == 3
        assert await asyncio.wait_for(later, 5) == "later"
        assert await count_rows(db) == 4
        assert db.run(schemas) == ["main"]
        with pytest.raises(ValueError, match="no"):
            await db.write_alone(broken, attach={"extra": extra})
        assert await count_rows(db) == 4
        assert db.run(schemas) == ["main"]
    finally:
        go.set()
        await db.close()


async def test_a_full_database_fails_the_whole_batch_with_its_own_error_and_takes_writes_again(
    tmp_path: Path,
) -> None:
    """A write that finds no room (here the database's size limit, as a full disk does)
    makes SQLite roll back the whole transaction: every write of its batch fails with
    SQLITE_FULL, the error that tells a caller to come back later (node.storage.disk),
    nothing of the batch is committed, and once there is room writes go through again."""
    db = make_db(tmp_path)
    try:
        pages = await db.write(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0])
        await db.write(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages}"))
        small, big = await asyncio.gather(db.write(insert("a")), db.write(insert("b" * 100_000)),
                                          return_exceptions=True)
        for failed in (small, big):
            assert isinstance(failed, sqlite3.OperationalError), failed
            assert failed.sqlite_errorcode == sqlite3.SQLITE_FULL
        assert await count_rows(db) == 0
        await db.write(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"))
        assert await db.write(insert("b" * 100_000)) == "b" * 100_000
        assert await count_rows(db) == 1
    finally:
        await db.close()


@pytest.mark.parametrize("shared", [False, True], ids=["alone", "shared"])
async def test_the_wal_is_checkpointed_and_stays_small_under_a_stream_of_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared: bool
) -> None:
    """SQLite's own checkpoint (in a COMMIT, now on the loop) is off; the checkpointer's
    thread copies the WAL into the database every ``EVERY`` commits while no write starts
    (in a shared database no other process's either), so the next commit starts the WAL
    again: a stream of commits leaves it a few of them long, not all of them."""
    monkeypatch.setattr(checkpoint, "EVERY", 20)
    path = tmp_path / "node.db"
    Database(path).close_sync()
    dbs = [Database(path, shared=shared) for _ in range(2 if shared else 1)]
    dbs[0].run(lambda conn: conn.execute("CREATE TABLE b (k INTEGER PRIMARY KEY, v BLOB)"))
    size = 8192
    count = 400

    async def write_from(db: Database, keys: range) -> None:
        for k in keys:  # one commit each
            await db.write(lambda conn, k=k: conn.execute("INSERT INTO b VALUES (?, ?)", (k, os.urandom(size))))

    await asyncio.gather(*(write_from(db, range(i, count, len(dbs))) for i, db in enumerate(dbs)))
    wal = path.with_name("node.db-wal").stat().st_size
    assert wal < count * size / 2, f"the WAL holds {wal} bytes after {count} commits of {size}"
    assert await dbs[0].read(lambda conn: conn.execute("SELECT count(*) FROM b").fetchone()[0]) == count
    for db in dbs:
        await db.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM b").fetchone()[0] == count
    finally:
        conn.close()
