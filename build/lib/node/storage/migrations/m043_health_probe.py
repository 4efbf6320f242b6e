"""Migration 40: one row that ``/readyz`` writes, to prove the database takes writes
(committed and synced like any other) rather than assume it."""

from __future__ import annotations

import sqlite_utils


def up(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE health_probe (id INTEGER PRIMARY KEY CHECK (id = 1), probed_at TEXT NOT NULL)")
