"""Migration 11: a stage may mean the deal's outcome (``won``, e.g. "Settled", or ``lost``),
so that a referred deal reaching it reports the outcome to the referrer, not progress."""

from __future__ import annotations

import sqlite_utils


def up(db: sqlite_utils.Database) -> None:
    db.execute("ALTER TABLE stages ADD COLUMN outcome TEXT CHECK (outcome IN ('won', 'lost'))")
