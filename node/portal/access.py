"""Who may use the client portal: invitations, passcodes, client sessions, revoking.

- **Invite** (:func:`invite`): a contact of a deal, by a broker, once the deal holds a
  stored document for each compliance label of the organisation's jurisdiction and the
  broker has set a privacy disclosure (:func:`blockers` says what is missing). It records
  the flow, whether the client sees the other applicants, the documents asked of them, a
  deal note, and sends the invitation (``node.portal.notify``).
- **Passcodes**: 6 random digits, stored only as an HMAC (``node.portal.vault``), working
  once, until they expire; :data:`MAX_TRIES` wrong tries lock one. A client may ask for a
  new one, at most once a minute and :data:`REQUESTS_PER_DAY` a day.
- **Sessions** are the client's own (table ``client_sessions``, cookie ``rn_client`` on
  ``/client/``), never a staff session; they end after the console's idle and absolute
  limits, at sign-out, and at once when access is revoked.
- **Revoke** (:func:`revoke`): ends every session and passcode of the access, with a deal note.

Access stays until revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from node.base.config import Config
from node.base.ids import new_id
from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.models import NoteIn
from node.crm.parsing import parse
from node.portal import notify, vault
from node.portal import settings as portal
from protocol.encoding import b64u_encode
from protocol.models import format_ts, parse_ts

INVITE_PASSCODE_TTL = timedelta(days=3)
PASSCODE_TTL = timedelta(minutes=30)
MAX_TRIES = 5
REQUEST_GAP = timedelta(seconds=60)
REQUESTS_PER_DAY = 5
SESSION_PREFIX = "rnc_"


def _now(now: datetime) -> str:
    return format_ts(now)


def blockers(conn: sqlite3.Connection, deal_id: str, broker_user_id: str) -> list[str]:
    """What stops the deal's portal from being shared, in words (empty: nothing)."""
    held = {d.label.casefold() for d in crm.list_documents(conn, deal_id) if d.stored}
    missing = [f"a document labelled “{label}”" for label in portal.required_labels(conn)
               if label.casefold() not in held]
    out = []
    if missing:
        out.append("Upload to this deal " + ", ".join(missing[:-1]) + (" and " if len(missing) > 1 else "")
                   + missing[-1] + ".")
    if not portal.get_settings(conn, broker_user_id).privacy_disclosure.strip():
        out.append("Set your privacy disclosure in your client portal settings.")
    return out


def _note(conn: sqlite3.Connection, deal_id: str, body: str, now: datetime, author: str | None,
          contact_id: str | None = None) -> None:
    crm.add_note(conn, parse(NoteIn, {"deal_id": deal_id, "contact_id": contact_id, "body": body}), now=now,
                 author_user_id=author, kind="system")


def event(conn: sqlite3.Connection, access_id: str, what: str, text: str, now: datetime) -> None:
    """A change the client made, for the deal's timeline."""
    deal_id = conn.execute("SELECT deal_id FROM client_access WHERE id = ?", (access_id,)).fetchone()[0]
    conn.execute("INSERT INTO client_events (deal_id, access_id, what, text, at) VALUES (?, ?, ?, ?, ?)",
                 (deal_id, access_id, what, text[:500], _now(now)))


@dataclass(frozen=True)
class Invited:
    access_id: str
    name: str
    #: Why the passcode's SMS did not go, when it was meant to.
    sms_problem: str | None


def invite(conn: sqlite3.Connection, config: Config, *, deal_id: str, contact_id: str, broker_user_id: str,
           flow_id: str, see_others: bool, documents: list[str], now: datetime) -> Invited:
    deal = crm.get_deal(conn, deal_id)
    if contact_id not in {c.contact_id for c in deal.contacts}:
        raise CrmError("invalid", "Choose a contact of this deal", "contact_id")
    missing = blockers(conn, deal_id, broker_user_id)
    if missing:
        raise CrmError("conflict", "The portal cannot be shared yet. " + " ".join(missing), "blockers")
    contact = crm.get_contact(conn, contact_id)
    if not contact.email:
        raise CrmError("invalid", f"{contact.display_name} has no e-mail address: add one to the contact first, "
                                  "as the client signs in with it", "contact_id")
    flow = portal.get_flow(conn, flow_id, broker_user_id)
    names = [d.strip() for d in documents if d.strip()]
    if not names:
        raise CrmError("invalid", "Choose at least one document the client must upload", "documents")
    if any(len(n) > 100 for n in names) or len(names) > 20:
        raise CrmError("invalid", "Choose at most 20 documents, each named in 100 characters or fewer", "documents")
    if conn.execute("SELECT 1 FROM client_access WHERE deal_id = ? AND contact_id = ? AND revoked_at IS NULL",
                    (deal_id, contact_id)).fetchone():
        raise CrmError("conflict", f"The portal is already shared with {contact.display_name}.", "contact_id")
    access_id = new_id("access", now)
    conn.execute("INSERT INTO client_access (id, deal_id, contact_id, broker_user_id, flow_id, see_others,"
                 " invited_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (access_id, deal_id, contact_id, broker_user_id, flow.id, int(see_others), _now(now)))
    for name in dict.fromkeys(names):
        add_request(conn, access_id, name, now)
    _note(conn, deal_id, f"Client portal shared with {contact.display_name}: flow “{flow.name}” ({flow.loan_type}); "
                         f"sees other applicants: {'yes' if see_others else 'no'}; documents to upload: "
                         f"{', '.join(dict.fromkeys(names))}.", now, broker_user_id, contact_id)
    code, expires = _new_passcode(conn, config.keys_dir, access_id, now, INVITE_PASSCODE_TTL)
    problem = notify.send_passcode(conn, config, access_id, code, expires, now, invitation=True)
    return Invited(access_id, contact.display_name, problem)


def add_request(conn: sqlite3.Connection, access_id: str, name: str, now: datetime) -> str:
    request_id = new_id("docreq", now)
    conn.execute("INSERT INTO client_requests (id, access_id, name, requested_at) VALUES (?, ?, ?, ?)",
                 (request_id, access_id, name, _now(now)))
    return request_id


def live_access(conn: sqlite3.Connection, access_id: str, deal_id: str | None = None) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM client_access WHERE id = ? AND revoked_at IS NULL", (access_id,)).fetchone()
    if row is None or (deal_id is not None and row["deal_id"] != deal_id):
        raise CrmError("not_found", "The portal is not shared with that client on this deal.")
    found: sqlite3.Row = row
    return found


def revoke(conn: sqlite3.Connection, access_id: str, deal_id: str, by_user_id: str, now: datetime) -> str:
    row = live_access(conn, access_id, deal_id)
    conn.execute("UPDATE client_access SET revoked_at = ? WHERE id = ?", (_now(now), access_id))
    conn.execute("UPDATE client_sessions SET ended_at = ? WHERE access_id = ? AND ended_at IS NULL",
                 (_now(now), access_id))
    conn.execute("DELETE FROM client_passcodes WHERE access_id = ?", (access_id,))
    name = crm.get_contact(conn, row["contact_id"]).display_name
    _note(conn, deal_id, f"Client portal access revoked for {name}.", now, by_user_id, row["contact_id"])
    return name


# --- passcodes ---------------------------------------------------------------------------


def _new_passcode(conn: sqlite3.Connection, keys_dir: Path, access_id: str, now: datetime,
                  ttl: timedelta) -> tuple[str, datetime]:
    code = f"{secrets.randbelow(10**6):06d}"
    expires = now + ttl
    conn.execute("INSERT INTO client_passcodes (access_id, code_hmac, created_at, expires_at) VALUES (?, ?, ?, ?)"
                 " ON CONFLICT (access_id) DO UPDATE SET code_hmac = excluded.code_hmac, created_at ="
                 " excluded.created_at, expires_at = excluded.expires_at, wrong_tries = 0, used_at = NULL",
                 (access_id, vault.passcode_hmac(keys_dir, access_id, code), _now(now), _now(expires)))
    return code, expires


def _accesses_of(conn: sqlite3.Connection, email: str) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT a.id, a.deal_id FROM client_access a JOIN contacts c ON c.id = a.contact_id"
        " WHERE a.revoked_at IS NULL AND c.email = ? COLLATE NOCASE ORDER BY a.invited_at DESC LIMIT 20",
        (email.strip(),)).fetchall()


def request_passcode(conn: sqlite3.Connection, config: Config, email: str, now: datetime) -> int:
    """A new passcode for each live access of ``email`` that has not asked too often;
    how many were sent (the page says the same whatever it is)."""
    sent = 0
    for row in _accesses_of(conn, email):
        times = [parse_ts(r[0]) for r in conn.execute(
            "SELECT at FROM client_passcode_requests WHERE access_id = ? AND at > ?",
            (row["id"], _now(now - timedelta(days=1))))]
        if len(times) >= REQUESTS_PER_DAY or any(now - t < REQUEST_GAP for t in times):
            continue
        conn.execute("INSERT INTO client_passcode_requests (access_id, at) VALUES (?, ?)", (row["id"], _now(now)))
        code, expires = _new_passcode(conn, config.keys_dir, row["id"], now, PASSCODE_TTL)
        notify.send_passcode(conn, config, row["id"], code, expires, now, invitation=False)
        sent += 1
    return sent


class SignInRefused(Exception):
    """The e-mail and passcode do not open a portal; the message is for the client."""


def sign_in(conn: sqlite3.Connection, keys_dir: Path, email: str, code: str, now: datetime) -> str:
    """Check a passcode and start a session; the new session id. Every wrong try counts
    against each live passcode of that address; the fifth locks it."""
    code = code.strip().replace(" ", "")
    wrong = SignInRefused("The e-mail address or passcode is not right. Check them, or ask for a new passcode.")
    accesses = _accesses_of(conn, email)
    locked = expired = False
    for row in accesses:
        pc = conn.execute("SELECT * FROM client_passcodes WHERE access_id = ?", (row["id"],)).fetchone()
        if pc is None or pc["used_at"] is not None:
            continue
        if pc["wrong_tries"] >= MAX_TRIES:
            locked = True
            continue
        if parse_ts(pc["expires_at"]) <= now:
            expired = True
            continue
        if len(code) == 6 and code.isdigit() and hmac.compare_digest(
                pc["code_hmac"], vault.passcode_hmac(keys_dir, row["id"], code)):
            conn.execute("UPDATE client_passcodes SET used_at = ? WHERE access_id = ?", (_now(now), row["id"]))
            event(conn, row["id"], "Client signed in", "Signed in to the client portal", now)
            return start_session(conn, row["id"], now)
    for row in accesses:
        conn.execute("UPDATE client_passcodes SET wrong_tries = wrong_tries + 1 WHERE access_id = ?"
                     " AND used_at IS NULL AND wrong_tries < ?", (row["id"], MAX_TRIES))
    if locked and not expired:
        raise SignInRefused(f"This passcode is locked after {MAX_TRIES} wrong tries. Ask for a new passcode.")
    if expired:
        raise SignInRefused("This passcode has expired. Ask for a new passcode.")
    raise wrong


# --- sessions ----------------------------------------------------------------------------


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def start_session(conn: sqlite3.Connection, access_id: str, now: datetime) -> str:
    sid = SESSION_PREFIX + b64u_encode(os.urandom(32))
    conn.execute("INSERT INTO client_sessions (id_hash, access_id, created_at, last_seen_at) VALUES (?, ?, ?, ?)",
                 (_hash(sid), access_id, _now(now), _now(now)))
    return sid


@dataclass(frozen=True)
class Client:
    """A signed-in client: their access to one deal."""

    access_id: str
    deal_id: str
    contact_id: str
    broker_user_id: str
    flow_id: str
    see_others: bool
    name: str
    email: str
    submitted: bool
    answers: dict[str, Any]


def client_of(conn: sqlite3.Connection, access_id: str) -> Client:
    row = conn.execute("SELECT a.*, c.first_name, c.last_name, c.email FROM client_access a"
                       " JOIN contacts c ON c.id = a.contact_id WHERE a.id = ?", (access_id,)).fetchone()
    name = " ".join(p for p in (row["first_name"], row["last_name"]) if p) or row["email"]
    return Client(row["id"], row["deal_id"], row["contact_id"], row["broker_user_id"], row["flow_id"],
                  bool(row["see_others"]), name, row["email"], row["submitted_at"] is not None,
                  json.loads(row["answers"]))


def session_client(conn: sqlite3.Connection, sid: str, now: datetime, *, idle_s: int,
                   absolute_s: int) -> Client | None:
    """The client of a live session (access not revoked), touching it; else None."""
    if not sid.startswith(SESSION_PREFIX) or len(sid) > 100:
        return None
    row = conn.execute("SELECT s.id_hash, s.access_id, s.created_at, s.last_seen_at FROM client_sessions s"
                       " JOIN client_access a ON a.id = s.access_id"
                       " WHERE s.id_hash = ? AND s.ended_at IS NULL AND a.revoked_at IS NULL", (_hash(sid),)).fetchone()
    if row is None:
        return None
    if (now - parse_ts(row["last_seen_at"])).total_seconds() > idle_s or \
            (now - parse_ts(row["created_at"])).total_seconds() > absolute_s:
        return None
    if (now - parse_ts(row["last_seen_at"])).total_seconds() > 60:
        conn.execute("UPDATE client_sessions SET last_seen_at = ? WHERE id_hash = ?", (_now(now), row["id_hash"]))
    return client_of(conn, row["access_id"])


def end_session(conn: sqlite3.Connection, sid: str, now: datetime) -> None:
    conn.execute("UPDATE client_sessions SET ended_at = ? WHERE id_hash = ? AND ended_at IS NULL",
                 (_now(now), _hash(sid)))
