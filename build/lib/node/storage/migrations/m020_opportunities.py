"""Migration 20: referral opportunities."""

from __future__ import annotations

import sqlite_utils


def up(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE opportunities (
            id TEXT PRIMARY KEY,
            deal_id TEXT NOT NULL REFERENCES deals(id),
            contact_id TEXT REFERENCES contacts(id),
            referral_type TEXT NOT NULL,
            outcome TEXT NOT NULL
                CHECK (outcome IN ('not_raised', 'client_declined', 'other', 'future')),
            reason TEXT NOT NULL DEFAULT '',
            follow_up_on TEXT,                         -- YYYY-MM-DD
            state TEXT NOT NULL CHECK (state IN ('open', 'converted', 'closed')),
            referral_local_id TEXT REFERENCES referrals(local_id),
            deferred_referral_id TEXT REFERENCES deferred_referrals(id),
            created_by TEXT NOT NULL REFERENCES users(id),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            closed_reason TEXT,
            CHECK ((outcome = 'future') = (follow_up_on IS NOT NULL)),
            CHECK (outcome != 'other' OR reason != ''),
            CHECK ((state = 'converted')
                   = (referral_local_id IS NOT NULL OR deferred_referral_id IS NOT NULL)),
            CHECK ((state = 'closed') = (closed_reason IS NOT NULL))
        );
        CREATE INDEX opportunities_follow_up ON opportunities(state, follow_up_on, created_at);
        CREATE INDEX opportunities_deal ON opportunities(deal_id);
        """
    )
