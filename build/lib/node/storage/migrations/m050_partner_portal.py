"""Migration 50: the partner portal (issue 13).

Partners are accounts in ``users`` with the role ``partner``: they sign in, set and
reset their password and hold sessions as every user does (migration 30). SQLite cannot
change a CHECK in place, so ``users`` is rebuilt with the new role: foreign keys are
deferred for the transaction, the rows are copied out, the table is dropped and made
again, and the rows go back in, which satisfies every reference to them again before
the commit checks.

- ``partner_profiles``: what a partner has beyond a user (phone, dark mode, who added
  them, when they were removed; a removed partner's user is inactive);
- ``partner_brokers``: the brokers a partner is assigned to (a partner's deals are
  owned by one of them; a partner assigned to nobody gets no log-in e-mail);
- ``deal_partners``: the deals a partner may see, because they created it or a broker
  shared it with them;
- ``note_shares``: a note a broker shared with the deal's partners (the note's
  ``shared_with_partner`` flag, kept beside ``notes`` so the note itself is unchanged);
- ``partner_documents``: the documents a partner uploaded (the only ones they see);
- ``partner_activity``: what each partner did, for the admins;
- ``portal_settings``: one row, the organisation's portal settings;
- ``partner_mail_on``: the notifications a partner turned on;
- ``partner_consents``: the consent a partner recorded when creating a deal (the
  protocol's ``Consent`` as JSON: the same record and disclosure hash as a referral);
- ``email_changes``: a new e-mail address waiting for its owner to confirm it (the
  link's SHA-256 only).
"""

from __future__ import annotations

import sqlite_utils

USERS = """
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'broker', 'partner')),
    active INTEGER NOT NULL DEFAULT 1,
    password_hash TEXT,
    created_at TEXT NOT NULL
)"""


def up(db: sqlite_utils.Database) -> None:
    conn = db.conn
    conn.execute("PRAGMA defer_foreign_keys=ON")  # for this transaction only
    conn.execute("CREATE TABLE users_before AS SELECT * FROM users")  # not TEMP: that attaches a temp database
    conn.execute("DROP TABLE users")
    conn.execute(USERS)
    conn.execute("INSERT INTO users (id, email, name, role, active, password_hash, created_at)"
                 " SELECT id, email, name, role, active, password_hash, created_at FROM users_before")
    conn.execute("DROP TABLE users_before")
    db.executescript(
        """
        CREATE TABLE partner_profiles (
            user_id TEXT PRIMARY KEY REFERENCES users(id),
            phone TEXT NOT NULL DEFAULT '',
            dark_mode INTEGER NOT NULL DEFAULT 0,
            added_by TEXT REFERENCES users(id),
            added_at TEXT NOT NULL,
            removed_at TEXT
        );
        CREATE TABLE partner_brokers (
            partner_id TEXT NOT NULL REFERENCES users(id),
            broker_id TEXT NOT NULL REFERENCES users(id),
            assigned_at TEXT NOT NULL,
            PRIMARY KEY (partner_id, broker_id)
        );
        CREATE TABLE deal_partners (
            deal_id TEXT NOT NULL REFERENCES deals(id),
            partner_id TEXT NOT NULL REFERENCES users(id),
            how TEXT NOT NULL CHECK (how IN ('created', 'shared')),
            added_at TEXT NOT NULL,
            added_by TEXT REFERENCES users(id),
            PRIMARY KEY (deal_id, partner_id)
        );
        CREATE INDEX deal_partners_partner ON deal_partners (partner_id, added_at);
        CREATE TABLE note_shares (
            note_id TEXT PRIMARY KEY REFERENCES notes(id),
            shared_at TEXT NOT NULL,
            shared_by TEXT REFERENCES users(id)
        );
        CREATE TABLE partner_documents (
            document_id TEXT PRIMARY KEY REFERENCES documents(id),
            partner_id TEXT NOT NULL REFERENCES users(id)
        );
        CREATE TABLE partner_activity (
            id TEXT PRIMARY KEY,
            partner_id TEXT NOT NULL REFERENCES users(id),
            at TEXT NOT NULL,
            action TEXT NOT NULL,
            deal_id TEXT REFERENCES deals(id),
            detail TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX partner_activity_partner ON partner_activity (partner_id, at);
        CREATE TABLE portal_settings (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            default_workflow_id TEXT REFERENCES workflows(id),
            mail_partner_added INTEGER NOT NULL DEFAULT 1,
            mail_deal_shared INTEGER NOT NULL DEFAULT 1,
            allowed_notifications TEXT NOT NULL DEFAULT '[]',  -- JSON array of mail kinds
            disclosure_version TEXT NOT NULL,
            disclosure_text TEXT NOT NULL
        );
        CREATE TABLE partner_mail_on (
            partner_id TEXT NOT NULL REFERENCES users(id),
            kind TEXT NOT NULL,
            PRIMARY KEY (partner_id, kind)
        );
        CREATE TABLE partner_consents (
            deal_id TEXT PRIMARY KEY REFERENCES deals(id),
            partner_id TEXT NOT NULL REFERENCES users(id),
            record TEXT NOT NULL,                      -- protocol.messages.Consent, as JSON
            created_at TEXT NOT NULL
        );
        CREATE TABLE email_changes (
            token_hash TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users(id),
            new_email TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            used_at TEXT
        );
        CREATE INDEX email_changes_user ON email_changes (user_id);
        """
    )
