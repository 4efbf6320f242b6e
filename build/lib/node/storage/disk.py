"""Syncing the database's WAL to the disk, and the error for a disk that refuses.

In WAL mode a COMMIT goes to ``<database>-wal``. :class:`node.storage.db.Database` commits
without waiting for the disk and then has :class:`WalSyncer` ``fdatasync`` that file before
it answers anyone. A refused sync is final: what was committed since the last good sync
may not be on the disk, and no later sync can vouch for it, since the kernel reports a
write-back error only once per descriptor. From then on the database fails every read and
write with :class:`DiskFailure`.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path


class DiskFailure(RuntimeError):
    """The disk refused to sync the database. What was committed since the last good sync
    may not be on disk, so the database takes no more reads or writes: restart the node,
    and SQLite recovers from what the disk really holds."""


class WalSyncer:
    """``fdatasync`` of one database's WAL file, where commits go in WAL mode.

    The file's name comes from SQLite itself (``PRAGMA database_list``: it resolves a
    symlinked path, and so must we). It is opened once and kept: a descriptor opened for
    each sync could be told nothing of a write-back error an earlier sync consumed. The
    main database file is never opened here: closing a descriptor of it would drop
    SQLite's locks on it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        main = next(row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main")
        self.path = Path(main + "-wal")
        self._fd: int | None = None
        self._refused: OSError | None = None

    def sync(self) -> None:
        if self._refused is not None:  # a refused sync is never vouched for by a later one
            raise self._refused
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)  # exists while our connection is open
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            self._refused = exc
            raise

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None



def unavailable_storage(exc: BaseException) -> str | None:
    """Why nothing can be stored now, if ``exc`` says so: ``"full"`` when the disk (or the
    database's size limit) has no room, ``"failed"`` when it refused a sync (see
    :class:`DiskFailure`); else None. A full disk is not final: SQLite rolled the write
    back, and the next one succeeds once there is room again."""
    if isinstance(exc, DiskFailure):
        return "failed"
    code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, sqlite3.Error) else None
    if code is not None and code & 0xFF == sqlite3.SQLITE_FULL:
        return "full"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "full"
    return None
