"""Migration 60: the client portal (issue 14).

- ``portal_org``: one row: the organisation's compliance jurisdiction (a row of
  ``compliance_labels``) and its SMS credits (an admin tops them up; each SMS uses one);
- ``compliance_labels``: the document labels a deal must hold before its portal is shared,
  per jurisdiction, as data: another jurisdiction is rows, not code;
- ``client_portal_settings``: each broker's own portal (status bar, fact find first, the privacy
  disclosure, which notifications reach the client and how);
- ``portal_videos``: a YouTube or Vimeo link with a description, for a workflow's stage
  (the dashboard) or for a flow's section;
- ``portal_flows``: a broker's fact-find flows: loan type, name, the catalogue version and
  the sections (and subsections) chosen;
- ``client_access``: a deal contact invited to the portal: the flow, whether they see the
  other applicants, their answers (JSON, by section), submitted or not, revoked or not;
- ``client_passcodes``: only an HMAC of each 6-digit passcode, its expiry, use and tries;
- ``client_sessions``: a client's sessions (by the SHA-256 of the id), apart from staff's;
- ``client_requests``: the documents asked of a client; ``client_files`` the files they
  uploaded (encrypted in ``<data_dir>/client-files``; the SHA-256 of the clear bytes);
- ``client_acks``: a compliance document read and acknowledged, with its SHA-256;
- ``client_messages``: between the broker and the client;
- ``client_events``: every change a client makes, for the deal's timeline;
- ``sms_queue``: text messages waiting for the gateway (a passcode's text is wiped once
  sent or given up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


def up(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE compliance_labels (
            jurisdiction TEXT NOT NULL,
            position INTEGER NOT NULL,
            label TEXT NOT NULL,
            PRIMARY KEY (jurisdiction, position)
        );
        INSERT INTO compliance_labels VALUES ('default', 1, 'Credit guide'), ('default', 2, 'Privacy disclosure'),
            ('NZ', 1, 'Acknowledgement and declaration'), ('NZ', 2, 'Adviser guide'), ('NZ', 3, 'ROMA');
        CREATE TABLE portal_org (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            jurisdiction TEXT NOT NULL DEFAULT 'default',
            sms_credits INTEGER NOT NULL DEFAULT 0 CHECK (sms_credits >= 0)
        );
        INSERT INTO portal_org (id) VALUES (1);
        CREATE TABLE client_portal_settings (
            user_id TEXT PRIMARY KEY REFERENCES users(id),
            show_status_bar INTEGER NOT NULL DEFAULT 1,
            fact_find_first INTEGER NOT NULL DEFAULT 1,
            privacy_disclosure TEXT NOT NULL DEFAULT '',
            notify TEXT NOT NULL DEFAULT '{}',         -- {event: "email" | "sms" | "both" | "off"}
            updated_at TEXT NOT NULL
        );
        CREATE TABLE portal_flows (
            id TEXT PRIMARY KEY,
            owner_user_id TEXT NOT NULL REFERENCES users(id),
            loan_type TEXT NOT NULL,
            name TEXT NOT NULL,
            catalogue_version INTEGER NOT NULL,
            sections TEXT NOT NULL,                    -- JSON {section: [subsection, ...]}
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE portal_videos (
            id TEXT PRIMARY KEY,
            owner_user_id TEXT NOT NULL REFERENCES users(id),
            stage_id TEXT REFERENCES stages(id),       -- a dashboard video, or
            flow_id TEXT REFERENCES portal_flows(id),  -- a flow video, for
            section TEXT,                              -- one of its sections
            url TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            CHECK ((stage_id IS NULL) != (flow_id IS NULL))
        );
        CREATE TABLE client_access (
            id TEXT PRIMARY KEY,
            deal_id TEXT NOT NULL REFERENCES deals(id),
            contact_id TEXT NOT NULL REFERENCES contacts(id),
            broker_user_id TEXT NOT NULL REFERENCES users(id),
            flow_id TEXT NOT NULL REFERENCES portal_flows(id),
            see_others INTEGER NOT NULL CHECK (see_others IN (0, 1)),
            answers TEXT NOT NULL DEFAULT '{}',
            submitted_at TEXT,
            invited_at TEXT NOT NULL,
            revoked_at TEXT
        );
        CREATE UNIQUE INDEX client_access_live ON client_access(deal_id, contact_id) WHERE revoked_at IS NULL;
        CREATE INDEX client_access_contact ON client_access(contact_id);
        CREATE TABLE client_passcodes (
            access_id TEXT PRIMARY KEY REFERENCES client_access(id),
            code_hmac TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            wrong_tries INTEGER NOT NULL DEFAULT 0,
            used_at TEXT
        );
        CREATE TABLE client_passcode_requests (
            access_id TEXT NOT NULL REFERENCES client_access(id),
            at TEXT NOT NULL
        );
        CREATE INDEX client_passcode_requests_access ON client_passcode_requests(access_id, at);
        CREATE TABLE client_sessions (
            id_hash TEXT PRIMARY KEY,
            access_id TEXT NOT NULL REFERENCES client_access(id),
            created_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            ended_at TEXT
        );
        CREATE INDEX client_sessions_access ON client_sessions(access_id);
        CREATE TABLE client_requests (
            id TEXT PRIMARY KEY,
            access_id TEXT NOT NULL REFERENCES client_access(id),
            name TEXT NOT NULL,
            requested_at TEXT NOT NULL
        );
        CREATE INDEX client_requests_access ON client_requests(access_id);
        CREATE TABLE client_files (
            id TEXT PRIMARY KEY,
            request_id TEXT NOT NULL REFERENCES client_requests(id),
            uploaded_by TEXT NOT NULL REFERENCES client_access(id),
            name TEXT NOT NULL,
            content_type TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            sha256 TEXT NOT NULL,                      -- of the clear bytes, checked on every read
            uploaded_at TEXT NOT NULL
        );
        CREATE INDEX client_files_request ON client_files(request_id);
        CREATE TABLE client_acks (
            access_id TEXT NOT NULL REFERENCES client_access(id),
            document_id TEXT NOT NULL REFERENCES documents(id),
            label TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (access_id, document_id)
        );
        CREATE TABLE client_messages (
            id TEXT PRIMARY KEY,
            access_id TEXT NOT NULL REFERENCES client_access(id),
            from_client INTEGER NOT NULL CHECK (from_client IN (0, 1)),
            author_user_id TEXT REFERENCES users(id),
            body TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE INDEX client_messages_access ON client_messages(access_id, at);
        CREATE TABLE client_events (
            seq INTEGER PRIMARY KEY,
            deal_id TEXT NOT NULL REFERENCES deals(id),
            access_id TEXT NOT NULL REFERENCES client_access(id),
            what TEXT NOT NULL,
            text TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE INDEX client_events_deal ON client_events(deal_id, at);
        CREATE TABLE sms_queue (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            to_number TEXT NOT NULL,
            body TEXT NOT NULL,
            secret INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            next_attempt_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            sent_at TEXT,
            last_error TEXT
        );
        CREATE INDEX sms_queue_due ON sms_queue(next_attempt_at) WHERE sent_at IS NULL;
        """
    )
