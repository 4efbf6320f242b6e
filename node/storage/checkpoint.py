"""Checkpoints of the database's WAL into its main file, on a thread and a connection of
their own.

Left to itself, SQLite checkpoints inside the COMMIT that takes the WAL past 1,000 pages,
with a sync of the WAL and one of the database file, on whatever thread commits.
:class:`node.storage.db.Database` commits its batches on the event loop, so its writer
turns that off (``PRAGMA wal_autocheckpoint=0``) and a :class:`Checkpointer` checkpoints
instead, after every :data:`EVERY` commits and after any write that went alone (a CSV
import's rows): PASSIVE, so it never waits for a reader. The database starts no write
meanwhile (writes that arrive wait, and then share one commit), nor do the other processes
that write it (it holds the writer's turn): a checkpoint that copied every frame lets the
next write start the WAL again from its beginning, so it stays about that size.

A checkpoint that fails (a full disk, a refused sync) leaves the WAL whole: SQLite starts
the WAL again only after a checkpoint copied and synced every frame of it, so nothing is
lost, and the next checkpoint copies those pages again. The failure is logged.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from node.base.logs import failure_fields, get_logger
from node.storage.sqlite import connect
from node.storage.worker import Worker

#: Commits between two checkpoints: the WAL holds what about this many commits wrote (SQLite's
#: own threshold is 1,000 pages, however many commits wrote them).
EVERY = 200

log = get_logger("node.db")


class Checkpointer:
    """Counts the commits (:meth:`committed`) and checkpoints when asked (:meth:`run`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._worker: Worker | None = None
        self._conn: sqlite3.Connection | None = None
        self._since = 0

    def committed(self, *, alone: bool = False) -> bool:
        """A COMMIT returned (``alone``: of a write that went alone); whether a checkpoint
        is due now."""
        self._since += 1
        if self._since < EVERY and not alone:
            return False
        self._since = 0
        return True

    async def run(self) -> None:
        """Checkpoint on the checkpointer's thread; the loop serves meanwhile."""
        await self._thread().call(self._checkpoint)

    def run_sync(self) -> None:
        self._thread().run(self._checkpoint)

    def _thread(self) -> Worker:
        if self._worker is None:
            self._worker = Worker("sqlite-checkpoint")
        return self._worker

    def _checkpoint(self) -> None:
        try:
            if self._conn is None:
                self._conn = connect(self.path)
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed; the next one copies its pages again", **failure_fields(exc))

    def close(self) -> None:
        """Close the connection and stop the thread."""
        if self._worker is None:
            return
        worker, self._worker = self._worker, None
        try:
            worker.run(self._close_conn)
        finally:
            worker.stop()

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
