"""What a client (and their broker) sees and changes in the portal: fact-find answers,
compliance acknowledgements, required documents and their files, messages.

**Visibility** (:func:`visible`): a client always sees their own access; with "see other
applicants" set, also the live accesses of the other contacts of the same deal (their
answers, and their required documents, which they may upload to). Nothing else: every
id a client sends is checked against what they may see, and anything else is
``not_found``, as if it did not exist.

Every change a client makes is a ``client_events`` row, which the deal's timeline shows.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from node.base.ids import new_id
from node.crm import store as crm
from node.crm.errors import CrmError
from node.portal import settings as portal
from node.portal.access import Client, client_of, event
from node.portal.catalogue import catalogue, readable
from protocol.models import format_ts

MAX_MESSAGE = 4000


def visible(conn: sqlite3.Connection, client: Client) -> list[Client]:
    """The accesses whose details and documents ``client`` sees: their own first."""
    others = []
    if client.see_others:
        rows = conn.execute("SELECT id FROM client_access WHERE deal_id = ? AND id != ? AND revoked_at IS NULL"
                            " ORDER BY invited_at, id", (client.deal_id, client.access_id)).fetchall()
        others = [client_of(conn, r["id"]) for r in rows]
    return [client, *others]


def save_section(conn: sqlite3.Connection, client: Client, section_key: str, values: dict[str, Any],
                 title: str, now: datetime) -> None:
    answers = dict(client.answers)
    answers[section_key] = values
    conn.execute("UPDATE client_access SET answers = ? WHERE id = ?", (json.dumps(answers), client.access_id))
    event(conn, client.access_id, "Client updated their fact find", f"{client.name}: {title}", now)


def submit(conn: sqlite3.Connection, client: Client, now: datetime) -> None:
    conn.execute("UPDATE client_access SET submitted_at = ? WHERE id = ?", (format_ts(now), client.access_id))
    event(conn, client.access_id, "Client submitted their fact find", client.name, now)


def answers_of(conn: sqlite3.Connection, client: Client) -> list[dict[str, Any]]:
    """A client's answers as people read them, section by section of their flow."""
    flow = portal.get_flow(conn, client.flow_id)
    return [{"key": s.key, "title": s.title, "subsections": readable(s, flow.sections[s.key],
                                                                      client.answers.get(s.key, {})),
             "done": s.key in client.answers} for s in flow.chosen()]


# --- compliance documents ----------------------------------------------------------------


def compliance(conn: sqlite3.Connection, client: Client) -> list[dict[str, Any]]:
    """The deal's documents labelled as the jurisdiction requires, and the client's
    acknowledgement of each."""
    labels = {label.casefold(): label for label in portal.required_labels(conn)}
    acks = {r["document_id"]: r for r in conn.execute("SELECT * FROM client_acks WHERE access_id = ?",
                                                      (client.access_id,))}
    out = []
    for doc in crm.list_documents(conn, client.deal_id):
        if doc.stored and doc.label.casefold() in labels:
            ack = acks.get(doc.id)
            out.append({"document": doc, "label": labels[doc.label.casefold()],
                        "acknowledged_at": ack["at"] if ack else None})
    return out


def compliance_document(conn: sqlite3.Connection, client: Client, document_id: str) -> Any:
    for item in compliance(conn, client):
        if item["document"].id == document_id:
            return item["document"]
    raise CrmError("not_found", "There is no such document in your portal.")


def acknowledge(conn: sqlite3.Connection, client: Client, document_id: str, now: datetime) -> str:
    doc = compliance_document(conn, client, document_id)
    conn.execute("INSERT OR IGNORE INTO client_acks (access_id, document_id, label, sha256, at)"
                 " VALUES (?, ?, ?, ?, ?)", (client.access_id, doc.id, doc.label, doc.sha256, format_ts(now)))
    event(conn, client.access_id, "Client acknowledged a document",
          f"{client.name} read and acknowledged “{doc.name}” ({doc.label}), SHA-256 {doc.sha256[:16]}…", now)
    return str(doc.name)


# --- required documents ------------------------------------------------------------------


def requests(conn: sqlite3.Connection, accesses: list[Client]) -> list[dict[str, Any]]:
    """The documents asked of these accesses, each with its files."""
    out = []
    for who in accesses:
        for r in conn.execute("SELECT * FROM client_requests WHERE access_id = ? ORDER BY requested_at, id",
                              (who.access_id,)):
            files = [dict(f) for f in conn.execute(
                "SELECT id, name, size_bytes, sha256, uploaded_at, uploaded_by FROM client_files"
                " WHERE request_id = ? ORDER BY uploaded_at, id", (r["id"],))]
            out.append({"id": r["id"], "name": r["name"], "for": who.name, "access_id": who.access_id,
                        "requested_at": r["requested_at"], "files": files})
    return out


def request_for(conn: sqlite3.Connection, client: Client, request_id: str) -> dict[str, Any]:
    for item in requests(conn, visible(conn, client)):
        if item["id"] == request_id:
            return item
    raise CrmError("not_found", "There is no such document request in your portal.")


def record_file(conn: sqlite3.Connection, client: Client, request_id: str, *, file_id: str, name: str,
                content_type: str, size_bytes: int, sha256: str, now: datetime) -> None:
    item = request_for(conn, client, request_id)
    conn.execute("INSERT INTO client_files (id, request_id, uploaded_by, name, content_type, size_bytes, sha256,"
                 " uploaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 (file_id, request_id, client.access_id, name, content_type, size_bytes, sha256, format_ts(now)))
    event(conn, client.access_id, "Client uploaded a document",
          f"{client.name} uploaded “{name}” for {item['name']} ({item['for']})", now)


def file_for_client(conn: sqlite3.Connection, client: Client, file_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM client_files WHERE id = ?", (file_id,)).fetchone()
    try:
        if row is None:
            raise CrmError("not_found", "no such file")
        request_for(conn, client, row["request_id"])  # not_found unless visible to this client
    except CrmError:  # one answer whether the file does not exist or is someone else's
        raise CrmError("not_found", "There is no such file in your portal.") from None
    found: sqlite3.Row = row
    return found


def file_on_deal(conn: sqlite3.Connection, deal_id: str, file_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT f.* FROM client_files f JOIN client_requests r ON r.id = f.request_id"
                       " JOIN client_access a ON a.id = r.access_id WHERE f.id = ? AND a.deal_id = ?",
                       (file_id, deal_id)).fetchone()
    if row is None:
        raise CrmError("not_found", "This deal has no such client file.")
    found: sqlite3.Row = row
    return found


# --- messages ----------------------------------------------------------------------------


def messages(conn: sqlite3.Connection, access_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT m.*, u.name AS author FROM client_messages m LEFT JOIN users u"
                        " ON u.id = m.author_user_id WHERE m.access_id = ? ORDER BY m.at, m.id", (access_id,))
    return [dict(r) for r in rows]


def add_message(conn: sqlite3.Connection, access_id: str, body: str, now: datetime, *,
                author_user_id: str | None = None) -> None:
    body = body.strip()
    if not body:
        raise CrmError("invalid", "Enter your message", "body")
    if len(body) > MAX_MESSAGE:
        raise CrmError("invalid", f"The message must be {MAX_MESSAGE:,} characters or fewer", "body")
    conn.execute("INSERT INTO client_messages (id, access_id, from_client, author_user_id, body, at)"
                 " VALUES (?, ?, ?, ?, ?, ?)",
                 (new_id("msg", now), access_id, int(author_user_id is None), author_user_id, body, format_ts(now)))


# --- the broker's view -------------------------------------------------------------------


def deal_portal(conn: sqlite3.Connection, deal_id: str) -> list[dict[str, Any]]:
    """Each live access of a deal with its flow, what is outstanding, files and messages."""
    out = []
    for r in conn.execute("SELECT id FROM client_access WHERE deal_id = ? AND revoked_at IS NULL"
                          " ORDER BY invited_at, id", (deal_id,)).fetchall():
        client = client_of(conn, r["id"])
        flow = portal.get_flow(conn, client.flow_id)
        docs = requests(conn, [client])
        acks = compliance(conn, client)
        sections = answers_of(conn, client)
        outstanding = [f"Upload: {d['name']}" for d in docs if not d["files"]]
        outstanding += [f"Acknowledge: {a['label']}" for a in acks if not a["acknowledged_at"]]
        outstanding += [f"Fact find: {s['title']}" for s in sections if not s["done"]]
        if not client.submitted:
            outstanding.append("Submit the fact find")
        out.append({"client": client, "flow": flow, "requests": docs, "acks": acks, "sections": sections,
                    "outstanding": outstanding, "messages": messages(conn, client.access_id)})
    return out


def shared_contacts(conn: sqlite3.Connection, deal_id: str) -> set[str]:
    return {r[0] for r in conn.execute("SELECT contact_id FROM client_access WHERE deal_id = ?"
                                       " AND revoked_at IS NULL", (deal_id,))}


def contact_answers(conn: sqlite3.Connection, contact_id: str) -> list[dict[str, Any]]:
    """A contact's portal answers on each deal they were invited to (latest first)."""
    out = []
    for r in conn.execute("SELECT a.id, d.title FROM client_access a JOIN deals d ON d.id = a.deal_id"
                          " WHERE a.contact_id = ? ORDER BY a.invited_at DESC", (contact_id,)).fetchall():
        client = client_of(conn, r["id"])
        out.append({"deal_id": client.deal_id, "deal": r["title"], "submitted": client.submitted,
                    "sections": [s for s in answers_of(conn, client) if s["done"]]})
    return out


def timeline(conn: sqlite3.Connection, deal_id: str, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT what, text, at FROM client_events WHERE deal_id = ? ORDER BY seq DESC LIMIT ?",
                        (deal_id, limit))
    return [{"at": r["at"], "what": r["what"], "text": r["text"], "by": None} for r in rows]


def catalogue_of(client: Client, conn: sqlite3.Connection) -> Any:
    return catalogue(portal.get_flow(conn, client.flow_id).catalogue_version)
