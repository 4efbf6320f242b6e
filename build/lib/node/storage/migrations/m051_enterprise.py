"""Migration 51: enterprises (issue 13). A connection may be marked, by this node's admin,
as leading to our ``child`` organisation or to our ``parent`` (``connection_relations``;
each side marks its own end, nothing is negotiated). ``enterprise_partner_sends`` keeps
which partners the parent added to which child (the profile it sent, never a secret)."""

from __future__ import annotations

import sqlite_utils


def up(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE connection_relations (
            connection_id TEXT PRIMARY KEY REFERENCES connections(id),
            relation TEXT NOT NULL CHECK (relation IN ('parent', 'child')),  -- what the peer is to us
            set_at TEXT NOT NULL,
            set_by TEXT REFERENCES users(id)
        );
        CREATE TABLE enterprise_partner_sends (
            id TEXT PRIMARY KEY,
            connection_id TEXT NOT NULL REFERENCES connections(id),
            partner_id TEXT REFERENCES users(id),    -- our partner, when they are one of ours
            partner_ref TEXT NOT NULL,
            name TEXT NOT NULL,
            email TEXT NOT NULL,
            sent_at TEXT NOT NULL,
            sent_by TEXT REFERENCES users(id),
            envelope_id TEXT NOT NULL
        );
        CREATE INDEX enterprise_partner_sends_connection ON enterprise_partner_sends (connection_id, sent_at);
        """
    )
