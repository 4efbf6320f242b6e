"""Migration 1: federation core."""

from __future__ import annotations

import sqlite_utils


def up(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE users (
            id TEXT PRIMARY KEY,
            email TEXT NOT NULL UNIQUE COLLATE NOCASE,
            name TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('admin', 'broker')),
            active INTEGER NOT NULL DEFAULT 1,
            password_hash TEXT,
            created_at TEXT NOT NULL
        );
        CREATE TABLE api_tokens (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users(id),
            token_hash TEXT NOT NULL UNIQUE,
            label TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            last_used_at TEXT,
            revoked_at TEXT
        );
        -- What we know of each peer: its latest verified discovery document.
        CREATE TABLE peers (
            node_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            base_url TEXT NOT NULL,
            inbox_url TEXT NOT NULL,
            discovery BLOB NOT NULL,
            updated_at TEXT NOT NULL,
            -- delivery queue state, per peer (Synapse-style: in the database, not memory)
            retry_attempts INTEGER NOT NULL DEFAULT 0,
            retry_not_before REAL NOT NULL DEFAULT 0
        );
        -- Every signing key a peer ever published, so old receipts verify offline.
        CREATE TABLE peer_keys (
            node_id TEXT NOT NULL,
            kid TEXT NOT NULL,
            use TEXT NOT NULL,
            jwk TEXT NOT NULL,
            first_seen_at TEXT NOT NULL,
            PRIMARY KEY (node_id, kid)
        );
        CREATE TABLE invitations (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            secret_hash TEXT NOT NULL,
            state TEXT NOT NULL,
            direction TEXT NOT NULL,
            settings TEXT NOT NULL DEFAULT '{}',
            created_by TEXT,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            used_at TEXT,
            connection_id TEXT
        );
        CREATE TABLE connections (
            id TEXT PRIMARY KEY,
            peer_node_id TEXT NOT NULL,
            role TEXT NOT NULL,
            state TEXT NOT NULL,
            direction TEXT NOT NULL,
            name TEXT NOT NULL,
            invitation_id TEXT,
            target_email TEXT,
            requested_by TEXT,
            message TEXT NOT NULL DEFAULT '',
            settings TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX connections_peer ON connections(peer_node_id);
        -- Every envelope we send, written before the first attempt.
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            envelope_id TEXT NOT NULL UNIQUE,
            peer_node_id TEXT NOT NULL,
            inbox_url TEXT NOT NULL,
            type TEXT NOT NULL,
            body BLOB NOT NULL,
            sha256 TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at TEXT NOT NULL,
            deadline_at REAL NOT NULL,
            delivered_at TEXT,
            receipt BLOB,
            subject_kind TEXT,
            subject_id TEXT,
            -- the message in clear, so an admin retry after the acceptance window can
            -- re-seal it in a fresh envelope (handlers are idempotent on their own ids)
            message TEXT NOT NULL,
            reply_to TEXT
        );
        CREATE INDEX outbox_due ON outbox(peer_node_id, state, seq);
        -- Every envelope we accepted: exact bytes, the inner signed message, our receipt.
        CREATE TABLE inbox (
            sender TEXT NOT NULL,
            envelope_id TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            type TEXT NOT NULL,
            body BLOB NOT NULL,
            inner BLOB NOT NULL,
            receipt BLOB NOT NULL,
            received_at TEXT NOT NULL,
            PRIMARY KEY (sender, envelope_id)
        );
        CREATE TABLE referrals (
            local_id TEXT NOT NULL UNIQUE,
            side TEXT NOT NULL,
            peer_node_id TEXT NOT NULL,
            id TEXT NOT NULL,
            connection_id TEXT NOT NULL,
            state TEXT NOT NULL,
            referral_type TEXT NOT NULL,
            deal_id TEXT,
            envelope_id TEXT,
            offer TEXT NOT NULL,
            last_seq INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (side, peer_node_id, id)
        );
        -- The timeline of each referral: status updates sent (receiver side) or received
        -- (sender side). applied = 0 while an update waits for an earlier seq.
        CREATE TABLE referral_events (
            side TEXT NOT NULL,
            peer_node_id TEXT NOT NULL,
            referral_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            status TEXT NOT NULL,
            stage TEXT,
            reason TEXT,
            at TEXT NOT NULL,
            applied INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (side, peer_node_id, referral_id, seq)
        );
        """
    )
