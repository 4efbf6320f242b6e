"""Migration 4: deferred referrals."""

from __future__ import annotations

import sqlite_utils


def up(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE deferred_referrals (
            id TEXT PRIMARY KEY,
            deal_id TEXT NOT NULL,
            stage_id TEXT NOT NULL,
            connection_id TEXT NOT NULL,
            request TEXT NOT NULL,
            actor_user_id TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('waiting', 'sent', 'cancelled')),
            referral_local_id TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX deferred_by_deal ON deferred_referrals(deal_id, state);
        """
    )
