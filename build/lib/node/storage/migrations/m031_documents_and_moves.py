"""Migration 31: what the console's deal pages need.

- ``documents`` learn whether this node holds the file's bytes (``stored``, uploaded
  through the console into ``<data_dir>/documents/<sha256>``) and its checked
  ``content_type``; a document recorded through the API is metadata only (``stored`` 0);
- ``deal_moves``: each stage change of a deal, with the stage names as they were then, for
  the deal's timeline (written by a deal-moved hook, so API and console moves alike);
- indexes for the board (the most recently changed deals of a stage first), for a deal's
  referrals, and for "is this file still used" by SHA-256.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


def up(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        ALTER TABLE documents ADD COLUMN content_type TEXT;
        ALTER TABLE documents ADD COLUMN stored INTEGER NOT NULL DEFAULT 0 CHECK (stored IN (0, 1));
        CREATE INDEX documents_sha256 ON documents(sha256);
        CREATE TABLE deal_moves (
            seq INTEGER PRIMARY KEY,
            deal_id TEXT NOT NULL REFERENCES deals(id),
            from_stage TEXT NOT NULL,                  -- names as they were at the move
            to_stage TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE INDEX deal_moves_deal ON deal_moves(deal_id, at);
        CREATE INDEX deals_stage_recent ON deals(stage_id, updated_at);
        CREATE INDEX IF NOT EXISTS referrals_deal ON referrals(deal_id);
        """
    )
