"""Everything the console's deal page shows, read in one go: the deal with its workflow,
stage and owner by name; its contacts; notes (with their authors); documents; the
referrals of the deal, sent and received, with their connection and status events;
referrals waiting for a stage; and a timeline of it all, newest first.

The referral tables are the federation's, hence this module's place: the CRM below knows
nothing of referrals.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from node.crm import store as crm
from node.crm.models import Contact, Deal, DealContact, Document, Note, Stage, Workflow
from node.crm.store import history
from node.federation.referring import list_deferred
from node.federation.sharing import type_words
from node.portal import client_data

#: The most notes, moves and events the page lists.
LIMIT = 200

_SIDE = {"sender": "Sent to", "receiver": "Received from"}


@dataclass(frozen=True)
class DealPage:
    deal: Deal
    workflow: Workflow
    stage: Stage
    owner: str | None
    contacts: list[tuple[DealContact, Contact]]
    notes: list[dict[str, Any]]
    documents: list[Document]
    referrals: list[dict[str, Any]]
    deferred: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    #: Contacts the client portal is shared with.
    portal_shared: frozenset[str] = frozenset()


def _names(conn: sqlite3.Connection, user_ids: set[str]) -> dict[str, str]:
    if not user_ids:
        return {}
    rows = conn.execute("SELECT id, name FROM users WHERE id IN (SELECT value FROM json_each(?))",
                        (json.dumps(sorted(user_ids)),))
    return {r[0]: r[1] for r in rows}


def _referrals(conn: sqlite3.Connection, deal_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT r.local_id, r.side, r.peer_node_id, r.id, r.state, r.referral_type, r.created_at,"
        " r.updated_at, coalesce(c.name, p.name, 'another organisation') AS connection"
        " FROM referrals r LEFT JOIN connections c ON c.id = r.connection_id"
        " LEFT JOIN peers p ON p.node_id = r.peer_node_id"
        " WHERE r.deal_id = ? ORDER BY r.created_at, r.local_id", (deal_id,)).fetchall()
    out = []
    for r in rows:
        events = conn.execute(
            "SELECT seq, status, stage, reason, at FROM referral_events WHERE side = ? AND peer_node_id = ?"
            " AND referral_id = ? AND applied = 1 ORDER BY seq LIMIT ?",
            (r["side"], r["peer_node_id"], r["id"], LIMIT)).fetchall()
        out.append({**{k: r[k] for k in ("local_id", "side", "state", "referral_type", "created_at",
                                         "updated_at", "connection")},
                    "direction": _SIDE.get(r["side"], r["side"]), "events": [dict(e) for e in events]})
    return out


def _timeline(page_notes: list[dict[str, Any]], documents: list[Document], moves: list[dict[str, str]],
              referrals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest first. Times are to the second, so what happened in the same second is
    ordered by what causes what: a referral, then notes and documents, then moves, then
    the status updates a move sends."""
    created: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for ref in referrals:
        created.append({"at": ref["created_at"], "what": f"Referral {ref['direction'].lower()} {ref['connection']}",
                        "text": type_words(ref["referral_type"]), "by": None, "referral": ref["local_id"]})
        for event in ref["events"]:
            text = event["status"].replace("_", " ").replace("-", " ") + (f" ({event['stage']})" if event["stage"] else "")
            if event["reason"]:
                text += f": {event['reason']}"
            events.append({"at": event["at"], "what": f"Referral update, {ref['connection']}", "text": text,
                           "by": None, "referral": ref["local_id"]})
    notes = []
    for note in reversed(page_notes):  # oldest first
        what = "Note" if note["kind"] == "user" else "Referral note" if note["kind"] == "referral" else "Note by the node"
        notes.append({"at": note["created_at"], "what": what, "text": note["body"], "by": note["author"]})
    added = [{"at": doc.created_at, "what": "Document added", "text": doc.name, "by": None} for doc in documents]
    moved = [{"at": move["at"], "what": "Moved", "text": f"{move['from_stage']} → {move['to_stage']}", "by": None}
             for move in reversed(moves)]
    items = sorted([*created, *notes, *added, *moved, *events], key=lambda item: item["at"])  # stable
    return items[::-1][:LIMIT]


def deal_page(conn: sqlite3.Connection, deal_id: str) -> DealPage:
    """The deal page's data; ``not_found`` for an id this node does not hold."""
    deal = crm.get_deal(conn, deal_id)
    workflow = crm.get_workflow(conn, deal.workflow_id)
    stage = next(s for s in workflow.stages if s.id == deal.stage_id)
    contacts = [(link, crm.get_contact(conn, link.contact_id)) for link in deal.contacts]
    notes: list[Note] = crm.list_notes(conn, deal_id=deal_id)[-LIMIT:]
    people = _names(conn, {n.author_user_id for n in notes if n.author_user_id}
                    | ({deal.owner_user_id} if deal.owner_user_id else set()))
    about = {c.id: c.display_name for _, c in contacts}
    page_notes = [{**n.model_dump(), "author": people.get(n.author_user_id or ""),
                   "about": about.get(n.contact_id or "")} for n in reversed(notes)]
    documents = crm.list_documents(conn, deal_id)
    referrals = _referrals(conn, deal_id)
    deferred = [d for d in list_deferred(conn, deal_id) if d["state"] == "waiting"]
    stages = {s.id: s.name for s in workflow.stages}
    for item in deferred:
        item["stage_name"] = stages.get(item["stage_id"], "a stage no longer in this workflow")
        item["connection"] = _connection_name(conn, item["connection_id"])
    moves = history.list_moves(conn, deal_id, limit=LIMIT)
    timeline = _timeline(page_notes, documents, moves, referrals)
    client_events = client_data.timeline(conn, deal_id, LIMIT)
    if client_events:
        timeline = sorted([*timeline, *client_events], key=lambda item: item["at"], reverse=True)[:LIMIT]
    return DealPage(deal, workflow, stage, people.get(deal.owner_user_id or ""), contacts, page_notes,
                    documents, referrals, deferred, timeline,
                    frozenset(client_data.shared_contacts(conn, deal_id)))


def _connection_name(conn: sqlite3.Connection, connection_id: str) -> str:
    row = conn.execute("SELECT name FROM connections WHERE id = ?", (connection_id,)).fetchone()
    return row[0] if row else "a connection that no longer exists"
