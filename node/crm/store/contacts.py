"""Contacts: read, searched, found by email, created, stored whole (import and restore)
and changed.

A contact's address and custom fields are JSON text in their columns;
:func:`_contact_row` writes a contact as its row (filing an inbound referral uses it too).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from node.base.ids import new_id
from node.base.inputs import STORED
from node.crm.errors import CrmError
from node.crm.models import Contact, ContactIn, ContactPatch
from node.crm.parsing import parse
from node.crm.store import search
from node.crm.store.sql import _json, _like, _limit, _missing, _raise_first, _ts, _where
from node.storage.sqlite import insert_row


def _contact(row: sqlite3.Row) -> Contact:
    data = dict(row)
    data.pop("rowid", None)  # selected by a search's walk (list_contacts)
    data["address"] = json.loads(data["address"])
    data["custom_fields"] = json.loads(data["custom_fields"])
    return Contact.model_validate(data, context=STORED)


def _contact_row(contact: ContactIn | Contact, **extra: Any) -> dict[str, Any]:
    """The row of a contact; ``extra`` adds columns its model lacks (id and times for a
    ContactIn)."""
    row = contact.model_dump()
    row["address"] = _json({k: v for k, v in row["address"].items() if v is not None})
    row["custom_fields"] = _json(contact.custom_fields)
    row.update(extra)
    return row


def get_contact(conn: sqlite3.Connection, contact_id: str, *, field: str | None = None) -> Contact:
    row = conn.execute("SELECT * FROM contacts WHERE id = ?", (contact_id,)).fetchone()
    if row is None:
        raise _missing("contact", contact_id, field)
    return _contact(row)


def list_contacts(
    conn: sqlite3.Connection, *, q: str | None = None, limit: int | None = None, offset: int = 0,
    after: tuple[str, str] | None = None, custom_only: bool = False,
) -> list[Contact]:
    """Contacts in the order they were created; ``q`` searches names, email and phone
    (through the search index when it narrows the search: see ``search``). ``after``
    (created_at, id) starts after that contact, and ``custom_only`` keeps those with
    custom fields: for an export read a page at a time."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if after is not None:
        where.append("(created_at, id) > (:after_at, :after_id)")
        params.update(after_at=after[0], after_id=after[1])
    if custom_only:  # on the partial index contacts_custom (migration 40)
        where.append("custom_fields != '{}'")
    if q:
        like = "LIKE :q ESCAPE '\\'"
        match = (f"(first_name {like} OR last_name {like} OR (coalesce(first_name, '') || ' ' || "
                 f"coalesce(last_name, '')) {like} OR email {like} OR phone {like})")
        params["q"] = _like(q)
        query = search.index_query(q)
        if limit is not None and after is None:  # a page in order (see ``search``)
            # what the index offers; for a term too short for it, the table in rowid order
            source = (search.offered_by("contacts_search") if query is not None
                      else f"SELECT rowid FROM contacts WHERE {match} ORDER BY rowid")
            rowids = search.first_page(
                conn, "contacts", [source],
                f"SELECT rowid, created_at, id FROM contacts {_where([*where, 'rowid IN (SELECT value FROM json_each(:rowids))', match])}",
                {**params, "fts": query}, int(offset), _limit(limit))
            if rowids is not None:
                return _by_rowid(conn, rowids)
        plan = search.plan(conn, q, {"contacts_search": None})
        if plan.many and limit is not None:  # a common term: its first page comes early, most often
            rowids = search.first_matches(
                conn, f"SELECT rowid, {match} FROM contacts {_where(where)} ORDER BY created_at, id LIMIT :window",
                params, offset, _limit(limit))
            if rowids is not None:
                return _by_rowid(conn, rowids)
        where.append(match)
        if plan.queries is not None:  # the rows the index offers (see ``search``)
            where.append(f"rowid IN ({search.CONTACT_ROWIDS})")
            params.update(plan.queries)
    rows = conn.execute(
        f"SELECT * FROM contacts {_where(where)} ORDER BY created_at, id LIMIT {_limit(limit)} OFFSET {int(offset)}",
        params,
    )
    return [_contact(r) for r in rows]


def _by_rowid(conn: sqlite3.Connection, rowids: list[int]) -> list[Contact]:
    """The contacts of these rowids, in their order."""
    found = {r["rowid"]: r for r in conn.execute(
        "SELECT rowid, * FROM contacts WHERE rowid IN (SELECT value FROM json_each(?))", (json.dumps(rowids),))}
    return [_contact(found[rowid]) for rowid in rowids]


def find_contacts_by_email(conn: sqlite3.Connection, email: str) -> list[Contact]:
    """Contacts with this email (case-insensitive); there may be several, e.g. a couple."""
    rows = conn.execute(
        "SELECT * FROM contacts WHERE email = ? ORDER BY created_at, id", (email.strip(),)
    )
    return [_contact(r) for r in rows]


def contact_problems(conn: sqlite3.Connection, contact: Contact) -> list[CrmError]:
    """Everything wrong with storing ``contact`` as a new contact: its id is taken."""
    if conn.execute("SELECT 1 FROM contacts WHERE id = ?", (contact.id,)).fetchone():
        return [CrmError("conflict", f"contact {contact.id!r} already exists", "id")]
    return []


def contact_rows(contact: Contact) -> list[tuple[str, dict[str, Any]]]:
    """The rows :func:`insert_contact` writes for ``contact``, as (table, row), checked by
    nothing: for an import that checks first and writes them all later."""
    return [("contacts", _contact_row(contact))]


def insert_contact(conn: sqlite3.Connection, contact: Contact) -> Contact:
    """Store a fully formed contact (its id and times included): for import and restore."""
    _raise_first(contact_problems(conn, contact))
    insert_row(conn, "contacts", _contact_row(contact))
    return contact


def create_contact(conn: sqlite3.Connection, data: ContactIn, *, now: datetime) -> Contact:
    ts = _ts(now)
    # ``data`` is validated; the fields added here are ours: construct without re-validating.
    contact = Contact.model_construct(**dict(data), id=new_id("ct", now), created_at=ts, updated_at=ts)
    return insert_contact(conn, contact)


def update_contact(
    conn: sqlite3.Connection, contact_id: str, patch: ContactPatch, *, now: datetime
) -> Contact:
    current = get_contact(conn, contact_id)
    changes = patch.model_dump(include=patch.model_fields_set)
    if not changes:
        return current
    merged = parse(Contact, {**current.model_dump(), **changes, "updated_at": _ts(now)})
    row = _contact_row(merged)
    del row["id"], row["created_at"]
    conn.execute(
        f"UPDATE contacts SET {', '.join(f'{k} = ?' for k in row)} WHERE id = ?",
        [*row.values(), contact_id],
    )
    return get_contact(conn, contact_id)
