"""What filing an inbound referral needs, each in as few statements as it can: where its
deal goes (:func:`placement`), which of the candidate owners are active
(:func:`active_user_ids`), and the filing itself, its contacts, deal and note in one step
(:func:`file_referral`).

For ``node.federation.landing``, which calls them inside one transaction.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from node.base.ids import new_id
from node.crm.errors import CrmError
from node.crm.models import NOTE_MAX_CHARS, ContactIn, DealIn, DealReferral
from node.crm.store.contacts import _contact_row
from node.crm.store.deals import _deal_row, _insert_deal_contacts
from node.crm.store.sql import _ts
from node.storage.sqlite import insert_row


def placement(
    conn: sqlite3.Connection, *, workflow_id: str | None = None, name: str | None = None,
    stage_id: str | None = None,
) -> tuple[str, str, str] | None:
    """Where a deal would go: (workflow id, stage id, workflow owner) for the workflow
    with ``workflow_id`` (or ``name``), at ``stage_id`` when that is one of its stages and
    else at its first stage; None if there is no such workflow (or it has no stage)."""
    where, key = ("w.id = ?", workflow_id) if workflow_id is not None else ("w.name = ?", (name or "").strip())
    row = conn.execute(
        "SELECT w.id, w.owner_user_id,"
        " (SELECT s.id FROM stages s WHERE s.workflow_id = w.id AND s.id = ?),"
        " (SELECT s.id FROM stages s WHERE s.workflow_id = w.id ORDER BY s.position LIMIT 1)"
        f" FROM workflows w WHERE {where}",
        (stage_id, key),
    ).fetchone()
    if row is None or row[3] is None:
        return None
    return row[0], row[2] or row[3], row[1]


def active_user_ids(conn: sqlite3.Connection, user_ids: list[str]) -> set[str]:
    """Which of ``user_ids`` are active users."""
    if not user_ids:
        return set()
    marks = ", ".join("?" * len(user_ids))
    return {r[0] for r in conn.execute(f"SELECT id FROM users WHERE active = 1 AND id IN ({marks})", user_ids)}


def file_referral(
    conn: sqlite3.Connection,
    data: DealIn,
    contacts: list[tuple[ContactIn, str]],
    *,
    referral: DealReferral,
    note: str,
    now: datetime,
) -> str:
    """File an inbound referral in one step: its new contacts (each with its role on the
    deal), the deal, and a referral note on it; return the deal's id.

    For ``node.federation.landing``, which has just read the workflow, stage and owner in the same
    transaction (:func:`placement`), so the checks :func:`insert_deal` makes for an API
    caller are left to the database's own keys. ``data`` and each contact are validated
    models; ``data.contacts`` is ignored."""
    if not 1 <= len(note) <= NOTE_MAX_CHARS:
        raise CrmError("invalid", f"a note has 1 to {NOTE_MAX_CHARS} characters", "body")
    ts = _ts(now)
    links: list[tuple[str, str]] = []
    for fields, role in contacts:
        contact_id = new_id("ct", now)
        insert_row(conn, "contacts", _contact_row(fields, id=contact_id, created_at=ts, updated_at=ts))
        links.append((contact_id, role))
    deal_id = new_id("deal", now)
    values = dict(data)
    values.update(id=deal_id, origin="referral", referral=referral, created_at=ts, updated_at=ts)
    insert_row(conn, "deals", _deal_row(values))
    _insert_deal_contacts(conn, deal_id, links)
    insert_row(conn, "notes", {"id": new_id("note", now), "deal_id": deal_id, "contact_id": None,
                                "author_user_id": None, "kind": "referral", "body": note, "created_at": ts})
    return deal_id
