"""Opening the node's SQLite file, bringing its schema up to date, and inserting a row.

:func:`connect` opens a connection the way :class:`node.storage.db.Database` needs it: WAL,
``synchronous=NORMAL`` (the database syncs the WAL itself: see :mod:`node.storage.db`),
foreign keys on. :func:`migrate` runs the versioned migrations of
:mod:`node.storage.migrations`.

Statement journals (one per write's SAVEPOINT) are kept in memory (``temp_store``):
spilled to a temporary file they cost more writes than the WAL itself, measured with
strace under bench/inbox_throughput.py.
"""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from typing import Any

from node.storage.migrations import LATEST, MIGRATIONS, load


def connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        conn.close()
        raise RuntimeError(f"{path}: SQLite could not use a WAL (journal mode {mode!r})")
    # A COMMIT writes the WAL without waiting for the disk: Database syncs it before it
    # reports any write done (see node.storage.db).
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA temp_store=MEMORY")  # statement journals of SAVEPOINTs
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def insert_row(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    """INSERT ``row`` (column: value) into ``table``; the statement text is made once per
    table and set of columns."""
    conn.execute(_insert_sql(table, tuple(row)), tuple(row.values()))


@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


class SchemaTooNew(RuntimeError):
    """The database was brought to a schema this release does not know, by a newer one."""


def migrate(conn: sqlite3.Connection) -> int:
    """Run every migration newer than the database (see :mod:`node.storage.migrations`);
    return the new version. A database newer than this release raises
    :class:`SchemaTooNew` and is left as it is: an older release cannot know what a newer
    one's tables mean, so it must not read or write them."""
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if current > LATEST:
        raise SchemaTooNew(
            f"the database is at schema version {current}, newer than this release of refnode knows "
            f"({LATEST}): a newer release used it. Run that release again, or restore a backup taken "
            "before the upgrade ('refnode restore')")
    if current == LATEST:
        return current
    import sqlite_utils  # only when there is something to migrate: see node.storage.migrations

    db = sqlite_utils.Database(conn)
    for version, _, module in MIGRATIONS:
        if version <= current:
            continue
        up = load(module)
        conn.execute("BEGIN IMMEDIATE")
        try:
            up(db)
            conn.execute(f"PRAGMA user_version={int(version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = version
    return current

