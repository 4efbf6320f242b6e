"""A copy of the live database, for ``refnode backup``: SQLite's online backup API, never
a file copy (which could catch the database file and its WAL at different moments).

The copy is one consistent state of the database: the source connection opens a read
transaction first and holds it while the backup API copies the pages a step at a time, so
the node goes on committing (WAL lets writers work beside a reader) and the copy is the
database as it was when the read began, whatever was committed meanwhile.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

#: Pages copied per step (4 MiB with SQLite's 4 KiB pages): the progress shown moves by this.
PAGES_PER_STEP = 1024

Progress = Callable[[int, int], None]


def snapshot(source: Path, target: Path, *, progress: Progress | None = None) -> int:
    """Copy the database at ``source`` into the new file ``target``; return its schema
    version. ``progress(copied_pages, total_pages)`` is called after each step."""
    if target.exists():
        raise FileExistsError(f"{target} exists")
    src = sqlite3.connect(str(source), isolation_level=None)
    try:
        src.execute("PRAGMA query_only=ON")
        src.execute("BEGIN")  # the read transaction that fixes what the copy holds
        version = int(src.execute("PRAGMA user_version").fetchone()[0])
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        dst = sqlite3.connect(str(target), isolation_level=None)
        try:
            def step(status: int, remaining: int, total: int) -> None:
                if progress is not None:
                    progress(total - remaining, total)

            src.backup(dst, pages=PAGES_PER_STEP, progress=step)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            dst.close()
        src.execute("COMMIT")
    finally:
        src.close()
    return version
