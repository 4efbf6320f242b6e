"""Migration 33: a peer's failing episode, so that the admins are told once per episode
(``node.federation.delivery_health``): since when deliveries to it have failed, and when
the admins were told (both cleared when a delivery goes through again)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


def up(db: sqlite_utils.Database) -> None:
    db.execute("ALTER TABLE peers ADD COLUMN failing_since REAL")  # epoch seconds of the first failure
    db.execute("ALTER TABLE peers ADD COLUMN failing_told_at TEXT")
