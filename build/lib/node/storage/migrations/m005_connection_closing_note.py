"""Migration 5: the note that closed a connection (a decline's message, a disconnect's
reason, or why the peer refused our request), kept on both sides so each admin sees it."""

from __future__ import annotations

import sqlite_utils


def up(db: sqlite_utils.Database) -> None:
    db.execute("ALTER TABLE connections ADD COLUMN closing_note TEXT NOT NULL DEFAULT ''")
