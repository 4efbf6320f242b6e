"""Migration 10: crm."""

from __future__ import annotations

import sqlite_utils


def up(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE workflows (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            owner_user_id TEXT NOT NULL REFERENCES users(id),
            created_at TEXT NOT NULL
        );
        CREATE TABLE stages (
            id TEXT PRIMARY KEY,
            workflow_id TEXT NOT NULL REFERENCES workflows(id),
            name TEXT NOT NULL COLLATE NOCASE,
            position INTEGER NOT NULL,
            UNIQUE (workflow_id, name),
            UNIQUE (id, workflow_id)  -- target of deals' (stage_id, workflow_id) key
        );
        CREATE TABLE contacts (
            id TEXT PRIMARY KEY,
            first_name TEXT,
            last_name TEXT,
            email TEXT COLLATE NOCASE,
            phone TEXT,
            address TEXT NOT NULL DEFAULT '{}',        -- JSON object
            date_of_birth TEXT,
            custom_fields TEXT NOT NULL DEFAULT '{}',  -- JSON object of strings
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX contacts_email ON contacts(email);
        CREATE INDEX contacts_name ON contacts(last_name COLLATE NOCASE, first_name COLLATE NOCASE);
        CREATE TABLE deals (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            deal_type TEXT,
            amount TEXT,                               -- decimal string, never REAL
            currency TEXT,
            workflow_id TEXT NOT NULL REFERENCES workflows(id),
            stage_id TEXT NOT NULL,
            owner_user_id TEXT REFERENCES users(id),
            folder TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL DEFAULT '',
            summary TEXT NOT NULL DEFAULT '',
            labels TEXT NOT NULL DEFAULT '[]',         -- JSON array of strings
            custom_fields TEXT NOT NULL DEFAULT '{}',  -- JSON object of strings
            origin TEXT NOT NULL CHECK (origin IN ('local', 'referral')),
            referral_peer_node_id TEXT,
            referral_id TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            FOREIGN KEY (stage_id, workflow_id) REFERENCES stages(id, workflow_id),
            CHECK ((origin = 'referral') = (referral_id IS NOT NULL))
        );
        CREATE INDEX deals_board ON deals(workflow_id, stage_id);
        CREATE INDEX deals_owner ON deals(owner_user_id);
        CREATE INDEX deals_folder ON deals(folder);
        CREATE UNIQUE INDEX deals_referral ON deals(referral_peer_node_id, referral_id)
            WHERE referral_id IS NOT NULL;
        CREATE TABLE deal_contacts (
            deal_id TEXT NOT NULL REFERENCES deals(id),
            contact_id TEXT NOT NULL REFERENCES contacts(id),
            role TEXT NOT NULL CHECK (role IN ('primary', 'co-applicant', 'other')),
            position INTEGER NOT NULL,
            PRIMARY KEY (deal_id, contact_id)
        );
        CREATE INDEX deal_contacts_contact ON deal_contacts(contact_id);
        CREATE TABLE notes (
            id TEXT PRIMARY KEY,
            deal_id TEXT REFERENCES deals(id),
            contact_id TEXT REFERENCES contacts(id),
            author_user_id TEXT REFERENCES users(id),
            kind TEXT NOT NULL CHECK (kind IN ('user', 'system', 'referral')),
            body TEXT NOT NULL,
            created_at TEXT NOT NULL,
            CHECK (deal_id IS NOT NULL OR contact_id IS NOT NULL)
        );
        CREATE INDEX notes_deal ON notes(deal_id, created_at);
        CREATE INDEX notes_contact ON notes(contact_id, created_at);
        CREATE TABLE documents (
            id TEXT PRIMARY KEY,
            deal_id TEXT NOT NULL REFERENCES deals(id),
            name TEXT NOT NULL,
            label TEXT NOT NULL DEFAULT '',
            size_bytes INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX documents_deal ON documents(deal_id, created_at);
        """
    )
