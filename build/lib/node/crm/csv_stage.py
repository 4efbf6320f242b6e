"""Where a CSV import keeps its checked rows until they are written: a scratch SQLite
file of its own, beside the node's database and never part of it.

Rows are staged as they are checked, so an import holds a few rows in memory, not the
file, and the node's database is not touched until every row has passed. Then
:meth:`Stage.move` copies them into the node's tables in one statement per table, inside
one transaction (the file attached as :data:`SCHEMA`, see
``node.storage.db.Database.write_alone``): SQLite copies them without Python's help, so
that transaction is short. The tables' own constraints check, at that moment, what the
rows name (ids not taken, contacts, workflows, stages and users that exist): anything
that changed since the rows were checked makes the copy fail as a whole.

The file needs no journal and no syncs: it is thrown away whatever happens. Its
``keys`` table remembers each row's unique keys (id, referral), to name the row an id
repeats.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

#: The name the stage is attached under for :meth:`Stage.move`.
SCHEMA = "csv_stage"
#: The folder of the stages, under the node's data folder; emptied when the node starts.
FOLDER = "csv-imports"


def clear_stages(data_dir: Path) -> None:
    """Remove the stages an import left when its node stopped in the middle of it."""
    for path in (data_dir / FOLDER).glob("*.db*"):
        path.unlink(missing_ok=True)


class Stage:
    """One import's scratch file. Call :meth:`close` when the import is over."""

    def __init__(self, data_dir: Path) -> None:
        folder = data_dir / FOLDER
        folder.mkdir(mode=0o700, exist_ok=True)
        self.path = folder / f"{uuid.uuid4().hex}.db"
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=OFF")
        self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.execute("CREATE TABLE keys (key TEXT PRIMARY KEY, row INTEGER NOT NULL)")
        #: Each table staged so far, with its columns, in the order of first use.
        self._tables: dict[str, tuple[str, ...]] = {}
        self._insert: dict[str, str] = {}

    def begin(self) -> None:
        self._conn.execute("BEGIN")

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def claim(self, key: str, row: int) -> int | None:
        """Claim ``key`` for ``row``; the row that claimed it first, if another did."""
        if self._conn.execute("INSERT OR IGNORE INTO keys VALUES (?, ?)", (key, row)).rowcount:
            return None
        return int(self._conn.execute("SELECT row FROM keys WHERE key = ?", (key,)).fetchone()[0])

    def add(self, table: str, row: dict[str, Any]) -> None:
        """Stage one row of ``table`` (a table of the node's database)."""
        columns = tuple(row)
        if table not in self._tables:
            self._tables[table] = columns
            self._conn.execute(f"CREATE TABLE {table} (seq INTEGER PRIMARY KEY, {', '.join(columns)})")
            names, marks = ", ".join(columns), ", ".join("?" * len(columns))
            self._insert[table] = f"INSERT INTO {table} ({names}) VALUES ({marks})"
        elif columns != self._tables[table]:
            raise ValueError(f"a row of {table} with other columns: {columns}")
        self._conn.execute(self._insert[table], tuple(row.values()))

    def move(self, conn: sqlite3.Connection) -> None:
        """Copy every staged row into the node's tables, in the order staged; ``conn`` is
        the node's, in a transaction, with this file attached as :data:`SCHEMA`. Raises
        ``sqlite3.IntegrityError`` when a row breaks a constraint (nothing is then copied,
        once the caller rolls back)."""
        for table, columns in self._tables.items():
            names = ", ".join(columns)
            conn.execute(f"INSERT INTO main.{table} ({names}) SELECT {names} FROM {SCHEMA}.{table} ORDER BY seq")

    def close(self) -> None:
        self._conn.close()
        self.path.unlink(missing_ok=True)
