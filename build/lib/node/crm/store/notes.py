"""Notes on a deal, on a contact, or on a contact within a deal: added and listed oldest
first. ``user`` notes have an author; ``system`` and ``referral`` notes are the node's.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Literal

from node.base.ids import new_id
from node.crm.errors import CrmError
from node.crm.fields import NoteKind
from node.crm.models import Note, NoteIn
from node.crm.store.contacts import get_contact
from node.crm.store.deals import get_deal
from node.crm.store.sql import _missing, _ts
from node.crm.store.users import _check_user
from node.storage.sqlite import insert_row


def _exists(conn: sqlite3.Connection, table: Literal["deals", "contacts"], id_: str) -> bool:
    return conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (id_,)).fetchone() is not None


def add_note(
    conn: sqlite3.Connection,
    data: NoteIn,
    *,
    now: datetime,
    author_user_id: str | None = None,
    kind: NoteKind = "user",
) -> Note:
    """A note on a deal and/or a contact. ``user`` notes need their author; ``system`` and
    ``referral`` notes are written by the node and may have none."""
    if data.deal_id is not None and not _exists(conn, "deals", data.deal_id):
        raise _missing("deal", data.deal_id, "deal_id")
    if data.contact_id is not None and not _exists(conn, "contacts", data.contact_id):
        raise _missing("contact", data.contact_id, "contact_id")
    if author_user_id is not None:
        _check_user(conn, author_user_id, "author_user_id", active=False, partner_ok=True)
    elif kind == "user":
        raise CrmError("invalid", "a user note needs its author", "author_user_id")
    note = Note(
        id=new_id("note", now),
        deal_id=data.deal_id,
        contact_id=data.contact_id,
        author_user_id=author_user_id,
        kind=kind,
        body=data.body,
        created_at=_ts(now),
    )
    insert_row(conn, "notes", note.model_dump())
    return note


def list_notes(
    conn: sqlite3.Connection, *, deal_id: str | None = None, contact_id: str | None = None
) -> list[Note]:
    """Notes of a deal, of a contact, or (both given) of that contact within that deal,
    oldest first."""
    if deal_id is None and contact_id is None:
        raise CrmError("invalid", "give a deal_id or a contact_id", "deal_id")
    where, params = [], []
    if deal_id is not None:
        get_deal(conn, deal_id, field="deal_id")
        where.append("deal_id = ?")
        params.append(deal_id)
    if contact_id is not None:
        get_contact(conn, contact_id, field="contact_id")
        where.append("contact_id = ?")
        params.append(contact_id)
    rows = conn.execute(
        f"SELECT * FROM notes WHERE {' AND '.join(where)} ORDER BY created_at, id", params
    )
    return [Note(**dict(r)) for r in rows]
