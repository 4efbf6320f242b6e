"""Migration 3: round-robin assignment cursor."""

from __future__ import annotations

import sqlite_utils


def up(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE assignment_cursor (connection_id TEXT PRIMARY KEY, next_index INTEGER NOT NULL DEFAULT 0)"
    )
