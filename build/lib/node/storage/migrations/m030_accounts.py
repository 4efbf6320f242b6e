"""Migration 30: what people in a browser need: sessions, one-time password links,
sign-in lockouts, the mail queue and each user's choice of mails.

Secrets are kept as hashes only: a session id, a password link and an API token are
looked up by their SHA-256; passwords are argon2 hashes in ``users.password_hash``
(migration 1).
"""

from __future__ import annotations

import sqlite_utils


def up(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE web_sessions (
            id_hash TEXT PRIMARY KEY,                  -- sha256 of the cookie's value
            user_id TEXT NOT NULL REFERENCES users(id),
            created_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            ended_at TEXT
        );
        CREATE INDEX web_sessions_user ON web_sessions (user_id);
        CREATE TABLE password_links (
            token_hash TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users(id),
            purpose TEXT NOT NULL CHECK (purpose IN ('set', 'reset')),
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            used_at TEXT
        );
        CREATE INDEX password_links_user ON password_links (user_id);
        CREATE TABLE signin_failures (
            email TEXT PRIMARY KEY COLLATE NOCASE,
            failures INTEGER NOT NULL,
            first_failure_at TEXT NOT NULL,
            locked_until TEXT
        );
        CREATE TABLE mail_queue (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            to_addr TEXT NOT NULL,
            to_name TEXT NOT NULL DEFAULT '',
            subject TEXT NOT NULL,
            text_body TEXT NOT NULL,
            html_body TEXT NOT NULL,
            created_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_error TEXT,
            sent_at TEXT,
            sent_as TEXT                               -- 'smtp' or the .eml file's name
        );
        CREATE INDEX mail_queue_due ON mail_queue (next_attempt_at) WHERE sent_at IS NULL;
        CREATE TABLE user_mail_off (                   -- the mails a user turned off
            user_id TEXT NOT NULL REFERENCES users(id),
            kind TEXT NOT NULL,
            PRIMARY KEY (user_id, kind)
        );
        """
    )
