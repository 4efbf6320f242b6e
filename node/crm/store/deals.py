"""Deals and the contacts on them: read, listed with filters and search, checked, created,
stored whole (import and restore), changed, moved between stages, and contacts attached
to or detached from them.

A deal's scalar fields are columns of ``deals``, its labels and custom fields JSON text,
and its contacts rows of ``deal_contacts`` in their order. Every write here goes through
:func:`_write_deal`, which rewrites the deal's contact rows; filing an inbound referral
writes the same rows with :func:`_deal_row` and :func:`_insert_deal_contacts`. A move
changes the stage only: the caller runs the ``node.crm.events`` hooks.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from node.base.ids import new_id
from node.base.inputs import STORED
from node.crm.errors import CrmError
from node.crm.fields import ContactRole, Origin
from node.crm.models import Deal, DealContact, DealIn, DealPatch, DealReferral
from node.crm.parsing import parse
from node.crm.store import search
from node.crm.store.contacts import get_contact
from node.crm.store.sql import _json, _like, _limit, _missing, _raise_first, _ts, _where
from node.crm.store.users import _check_user
from node.crm.store.workflows import _check_stage_in, get_stage, get_workflow
from node.storage.sqlite import insert_row

_DEAL_SCALARS = (
    "id", "title", "deal_type", "amount", "currency", "workflow_id", "stage_id",
    "owner_user_id", "folder", "source", "summary", "origin", "created_at", "updated_at",
)  # fmt: skip


def _deal_contacts(conn: sqlite3.Connection, deal_ids: list[str]) -> dict[str, list[DealContact]]:
    out: dict[str, list[DealContact]] = {d: [] for d in deal_ids}
    rows = conn.execute(
        "SELECT deal_id, contact_id, role FROM deal_contacts "
        "WHERE deal_id IN (SELECT value FROM json_each(?)) ORDER BY deal_id, position",
        (json.dumps(deal_ids),),
    )
    for r in rows:
        out[r["deal_id"]].append(DealContact(contact_id=r["contact_id"], role=r["role"]))
    return out


def _deal(row: sqlite3.Row, contacts: list[DealContact]) -> Deal:
    data = {k: row[k] for k in _DEAL_SCALARS}
    data["labels"] = json.loads(row["labels"])
    data["custom_fields"] = json.loads(row["custom_fields"])
    data["contacts"] = contacts
    if row["referral_id"] is not None:
        data["referral"] = DealReferral(
            peer_node_id=row["referral_peer_node_id"], referral_id=row["referral_id"]
        )
    return Deal.model_validate(data, context=STORED)


def _deals(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> list[Deal]:
    contacts = _deal_contacts(conn, [r["id"] for r in rows])
    return [_deal(r, contacts[r["id"]]) for r in rows]


def get_deal(conn: sqlite3.Connection, deal_id: str, *, field: str | None = None) -> Deal:
    row = conn.execute("SELECT * FROM deals WHERE id = ?", (deal_id,)).fetchone()
    if row is None:
        raise _missing("deal", deal_id, field)
    return _deals(conn, [row])[0]


def find_deal_by_referral(
    conn: sqlite3.Connection, peer_node_id: str, referral_id: str
) -> Deal | None:
    row = conn.execute(
        "SELECT * FROM deals WHERE referral_peer_node_id = ? AND referral_id = ?",
        (peer_node_id, referral_id),
    ).fetchone()
    return None if row is None else _deals(conn, [row])[0]


def list_deals(
    conn: sqlite3.Connection,
    *,
    workflow_id: str | None = None,
    stage_id: str | None = None,
    owner_user_id: str | None = None,
    contact_id: str | None = None,
    folder: str | None = None,
    label: str | None = None,
    origin: Origin | None = None,
    q: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    after: tuple[str, str] | None = None,
    custom_only: bool = False,
) -> list[Deal]:
    """Deals in the order they were created, filtered by every argument given. ``q``
    searches title, summary, source and the names and emails of the deal's contacts
    (through the search indexes when they narrow the search: see ``search``).
    A filter naming an unknown workflow, stage, user or contact is ``not_found``.
    ``after`` (created_at, id) starts after that deal, and ``custom_only`` keeps those
    with custom fields: for an export read a page at a time."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if after is not None:
        where.append("(d.created_at, d.id) > (:after_at, :after_id)")
        params.update(after_at=after[0], after_id=after[1])
    if custom_only:  # on the partial index deals_custom (migration 40)
        where.append("d.custom_fields != '{}'")
    if workflow_id is not None:
        get_workflow(conn, workflow_id, field="workflow_id")
        where.append("d.workflow_id = :workflow_id")
        params["workflow_id"] = workflow_id
    if stage_id is not None:
        get_stage(conn, stage_id, field="stage_id")
        where.append("d.stage_id = :stage_id")
        params["stage_id"] = stage_id
    if owner_user_id is not None:
        _check_user(conn, owner_user_id, "owner_user_id", active=False)
        where.append("d.owner_user_id = :owner")
        params["owner"] = owner_user_id
    if contact_id is not None:
        get_contact(conn, contact_id, field="contact_id")
        # driven by the contact's links (deal_contacts_contact), not a walk of every deal
        where.append("d.id IN (SELECT dc.deal_id FROM deal_contacts dc WHERE dc.contact_id = :contact)")
        params["contact"] = contact_id
    if folder is not None:
        where.append("d.folder = :folder")
        params["folder"] = folder
    if label is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(d.labels) WHERE value = :label)")
        params["label"] = label
    if origin is not None:
        where.append("d.origin = :origin")
        params["origin"] = origin
    if q:
        like = "LIKE :q ESCAPE '\\'"
        own = f"(d.title {like} OR d.summary {like} OR d.source {like})"
        person = (f"(c.first_name {like} OR c.last_name {like} "
                  f"OR (coalesce(c.first_name, '') || ' ' || coalesce(c.last_name, '')) {like} OR c.email {like})")
        match = (f"({own} OR EXISTS (SELECT 1 FROM deal_contacts dc JOIN contacts c "
                 f"ON c.id = dc.contact_id WHERE dc.deal_id = d.id AND {person}))")
        params["q"] = _like(q)
        query = search.index_query(q)
        if limit is not None and after is None:  # a page in order (see ``search``)
            # what the indexes offer; for a term too short for them, the deals in rowid order,
            # their contacts' names read from their index's text (the same rowid)
            sources = ([search.offered_by("deals_search"), search.offered_by("deal_people")] if query is not None
                       else [f"SELECT d.rowid FROM deals d WHERE {own} OR (SELECT p.people FROM deal_people p "
                             f"WHERE p.rowid = d.rowid) {like} ORDER BY d.rowid"])
            rowids = search.first_page(
                conn, "deals", sources,
                f"SELECT d.rowid, d.created_at, d.id FROM deals d "
                f"{_where([*where, 'd.rowid IN (SELECT value FROM json_each(:rowids))', match])}",
                {**params, "fts": query}, int(offset), _limit(limit))
            if rowids is not None:
                return _by_rowid(conn, rowids)
        # a deal's search looks at its contacts' names and emails, not their phones
        plan = search.plan(conn, q, {"deals_search": None, "contacts_search": "person"})
        if plan.many and limit is not None:  # a common term: its first page comes early, most often
            rowids = search.first_matches(
                conn, f"SELECT d.rowid, {match} FROM deals d {_where(where)} ORDER BY d.created_at, d.id "
                "LIMIT :window", params, offset, _limit(limit))
            if rowids is not None:
                return _by_rowid(conn, rowids)
        if plan.queries is None:  # walk the deals in order, each checked
            where.append(match)
        else:  # the same conditions, on the rows the search indexes offer (see ``search``)
            where.append(f"((d.rowid IN ({search.DEAL_ROWIDS}) AND {own}) OR d.id IN (SELECT dc.deal_id "
                         "FROM deal_contacts dc WHERE dc.contact_id IN (SELECT c.id FROM contacts c "
                         f"WHERE c.rowid IN ({search.CONTACT_ROWIDS}) AND {person})))")
            params.update(plan.queries)
    sql = f"SELECT d.* FROM deals d {_where(where)} ORDER BY d.created_at, d.id"
    sql += f" LIMIT {_limit(limit)} OFFSET {int(offset)}"
    return _deals(conn, conn.execute(sql, params).fetchall())


def _by_rowid(conn: sqlite3.Connection, rowids: list[int]) -> list[Deal]:
    """The deals of these rowids, in their order."""
    found = {r["rowid"]: r for r in conn.execute(
        "SELECT rowid, * FROM deals WHERE rowid IN (SELECT value FROM json_each(?))", (json.dumps(rowids),))}
    return _deals(conn, [found[rowid] for rowid in rowids])


def deal_problems(conn: sqlite3.Connection, deal: Deal, *, new: bool) -> list[CrmError]:
    """Everything wrong with storing ``deal``, checked against the database: unknown
    workflow, stage, owner or contacts; a stage of another workflow; and for a ``new``
    deal an id or referral already taken. An empty list means it can be written."""
    problems: list[CrmError] = []

    def check(fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except CrmError as exc:
            problems.append(exc)

    try:
        workflow = get_workflow(conn, deal.workflow_id, field="workflow_id")
    except CrmError as exc:
        problems.append(exc)
    else:
        check(_check_stage_in, conn, deal.stage_id, workflow)
    if deal.owner_user_id is not None:
        check(_check_user, conn, deal.owner_user_id, "owner_user_id", active=False)
    if deal.contacts:
        ids = [link.contact_id for link in deal.contacts]
        found = {r[0] for r in conn.execute(
            f"SELECT id FROM contacts WHERE id IN ({', '.join('?' * len(ids))})", ids)}
        for i, link in enumerate(deal.contacts):
            if link.contact_id not in found:
                problems.append(_missing("contact", link.contact_id, f"contacts.{i}.contact_id"))
    if new:
        if conn.execute("SELECT 1 FROM deals WHERE id = ?", (deal.id,)).fetchone():
            problems.append(CrmError("conflict", f"deal {deal.id!r} already exists", "id"))
        if deal.referral is not None:
            other = conn.execute(
                "SELECT id FROM deals WHERE referral_peer_node_id = ? AND referral_id = ?",
                (deal.referral.peer_node_id, deal.referral.referral_id),
            ).fetchone()
            if other is not None:
                problems.append(
                    CrmError(
                        "conflict",
                        f"referral {deal.referral.referral_id!r} already has deal {other[0]!r}",
                        "referral",
                    )
                )
    return problems


def _deal_row(values: dict[str, Any]) -> dict[str, Any]:
    """The row of a deal from its fields (a Deal's, or a DealIn's plus the ones it lacks)."""
    row = {k: values[k] for k in _DEAL_SCALARS}
    row["labels"] = _json(values["labels"])
    row["custom_fields"] = _json(values["custom_fields"])
    referral = values["referral"]
    row["referral_peer_node_id"] = referral.peer_node_id if referral else None
    row["referral_id"] = referral.referral_id if referral else None
    return row


def _write_deal(conn: sqlite3.Connection, deal: Deal, *, insert: bool) -> Deal:
    row = _deal_row(dict(deal))
    if insert:
        insert_row(conn, "deals", row)
    else:
        del row["id"]
        conn.execute(
            f"UPDATE deals SET {', '.join(f'{k} = ?' for k in row)} WHERE id = ?",
            [*row.values(), deal.id],
        )
        conn.execute("DELETE FROM deal_contacts WHERE deal_id = ?", (deal.id,))
    _insert_deal_contacts(conn, deal.id, [(c.contact_id, c.role) for c in deal.contacts])
    return deal  # exactly what was written


def _insert_deal_contacts(conn: sqlite3.Connection, deal_id: str, links: list[tuple[str, str]]) -> None:
    """Link a deal to its contacts, (contact id, role), in their order."""
    conn.executemany(
        "INSERT INTO deal_contacts (deal_id, contact_id, role, position) VALUES (?, ?, ?, ?)",
        [(deal_id, contact_id, role, i) for i, (contact_id, role) in enumerate(links)],
    )


def deal_rows(deal: Deal) -> list[tuple[str, dict[str, Any]]]:
    """The rows :func:`insert_deal` writes for ``deal``, as (table, row), checked by
    nothing: for an import that checks first and writes them all later."""
    links = [
        ("deal_contacts", {"deal_id": deal.id, "contact_id": c.contact_id, "role": c.role, "position": i})
        for i, c in enumerate(deal.contacts)
    ]
    return [("deals", _deal_row(dict(deal))), *links]


def insert_deal(conn: sqlite3.Connection, deal: Deal) -> Deal:
    """Store a fully formed deal (its id, origin and times included): for import and
    restore. The owner need only exist; it may have been deactivated since."""
    _raise_first(deal_problems(conn, deal, new=True))
    return _write_deal(conn, deal, insert=True)


def create_deal(
    conn: sqlite3.Connection,
    data: DealIn,
    *,
    now: datetime,
    referral: DealReferral | None = None,
) -> Deal:
    """A new deal. Pass ``referral`` for a deal created from an inbound referral: its
    origin is then "referral", and one referral makes at most one deal (``conflict``)."""
    ts = _ts(now)
    # ``data`` is validated; the fields added here are ours: construct without re-validating.
    deal = Deal.model_construct(
        **dict(data),
        id=new_id("deal", now),
        origin="referral" if referral else "local",
        referral=referral,
        created_at=ts,
        updated_at=ts,
    )
    if deal.owner_user_id is not None:
        _check_user(conn, deal.owner_user_id, "owner_user_id", active=True)
    return insert_deal(conn, deal)


def update_deal(conn: sqlite3.Connection, deal_id: str, patch: DealPatch, *, now: datetime) -> Deal:
    """Change the fields ``patch`` sets (see :class:`DealPatch`)."""
    current = get_deal(conn, deal_id)
    changes = patch.model_dump(include=patch.model_fields_set)
    if not changes:
        return current
    merged = parse(Deal, {**current.model_dump(), **changes, "updated_at": _ts(now)})
    if "owner_user_id" in changes and merged.owner_user_id not in (None, current.owner_user_id):
        _check_user(conn, merged.owner_user_id, "owner_user_id", active=True)
    _raise_first(deal_problems(conn, merged, new=False))
    return _write_deal(conn, merged, insert=False)


def move_deal(
    conn: sqlite3.Connection,
    deal_id: str,
    stage_id: str,
    *,
    now: datetime,
    workflow_id: str | None = None,
) -> Deal:
    """Move a deal to another stage of its workflow, or, with ``workflow_id``, to a
    stage of another workflow. A stage outside the target workflow is ``invalid``."""
    current = get_deal(conn, deal_id)
    target = get_workflow(conn, workflow_id or current.workflow_id, field="workflow_id")
    _check_stage_in(conn, stage_id, target)
    if stage_id == current.stage_id:
        return current
    moved = current.model_copy(
        update={"workflow_id": target.id, "stage_id": stage_id, "updated_at": _ts(now)}
    )
    return _write_deal(conn, moved, insert=False)


def attach_contact(
    conn: sqlite3.Connection,
    deal_id: str,
    contact_id: str,
    *,
    role: ContactRole = "primary",
    now: datetime,
) -> Deal:
    """Add a contact to a deal, or change the role of one already on it."""
    current = get_deal(conn, deal_id)
    get_contact(conn, contact_id, field="contact_id")
    link = parse(DealContact, {"contact_id": contact_id, "role": role})
    contacts = [c for c in current.contacts if c.contact_id != contact_id]
    index = next((i for i, c in enumerate(current.contacts) if c.contact_id == contact_id), None)
    contacts.insert(len(contacts) if index is None else index, link)
    return update_deal(conn, deal_id, DealPatch(contacts=contacts), now=now)


def detach_contact(
    conn: sqlite3.Connection, deal_id: str, contact_id: str, *, now: datetime
) -> Deal:
    current = get_deal(conn, deal_id)
    if all(c.contact_id != contact_id for c in current.contacts):
        raise CrmError(
            "not_found", f"contact {contact_id!r} is not on deal {deal_id!r}", "contact_id"
        )
    contacts = [c for c in current.contacts if c.contact_id != contact_id]
    return update_deal(conn, deal_id, DealPatch(contacts=contacts), now=now)
