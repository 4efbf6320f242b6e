"""The CRM's tables (migration 10) and every SQL statement that reads or writes them.

Functions take the ``sqlite3.Connection`` they run on and return models, so callers
compose several of them inside one ``Database.write`` (or ``Database.run``) transaction.
Each function checks everything before its first write and raises :class:`CrmError`
(``not_found`` / ``invalid`` / ``conflict``) instead; a caller's transaction then rolls
back whatever earlier calls in it wrote. ``now`` is the caller's tz-aware datetime.

Users live in the federation core's ``users`` table (migration 1); this module reads them
and creates them, it does not define them.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any, Literal

from node.base.ids import new_id
from node.crm.errors import CrmError
from node.crm.models import (
    NOTE_MAX_CHARS,
    Address,
    Contact,
    ContactIn,
    ContactPatch,
    ContactRole,
    Deal,
    DealContact,
    DealIn,
    DealPatch,
    DealReferral,
    Document,
    DocumentIn,
    Note,
    NoteIn,
    NoteKind,
    Origin,
    Role,
    Stage,
    StageIn,
    User,
    UserIn,
    Workflow,
    WorkflowIn,
    WorkflowPatch,
    parse,
)
from node.storage.sqlite import insert_row
from protocol.models import format_ts


def _ts(now: datetime) -> str:
    return format_ts(now)


def _json(value: Any) -> str:
    if not value and isinstance(value, dict | list):  # most labels and custom fields
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _exists(conn: sqlite3.Connection, table: Literal["deals", "contacts"], id_: str) -> bool:
    return conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (id_,)).fetchone() is not None


def _missing(what: str, id_: str, field: str | None = None) -> CrmError:
    return CrmError("not_found", f"{what} {id_!r} not found", field)


def _raise_first(problems: list[CrmError]) -> None:
    if problems:
        raise problems[0]


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# -- users -----------------------------------------------------------------------------

_USER_COLUMNS = "id, email, name, role, active, created_at"


def _user(row: sqlite3.Row) -> User:
    return User(**{**dict(row), "active": bool(row["active"])})


def get_user(conn: sqlite3.Connection, user_id: str) -> User:
    row = conn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise _missing("user", user_id)
    return _user(row)


def find_user_by_email(conn: sqlite3.Connection, email: str) -> User | None:
    row = conn.execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE email = ?", (email.strip(),)
    ).fetchone()
    return None if row is None else _user(row)


def list_users(conn: sqlite3.Connection, active_only: bool = False) -> list[User]:
    where = "WHERE active = 1" if active_only else ""
    rows = conn.execute(
        f"SELECT {_USER_COLUMNS} FROM users {where} ORDER BY name COLLATE NOCASE, id"
    )
    return [_user(r) for r in rows]


def create_user(conn: sqlite3.Connection, email: str, name: str, role: Role, now: datetime) -> User:
    data = parse(UserIn, {"email": email, "name": name, "role": role})
    if find_user_by_email(conn, data.email) is not None:
        raise CrmError("conflict", f"a user with email {data.email!r} already exists", "email")
    user_id = new_id("usr", now)
    conn.execute(
        "INSERT INTO users (id, email, name, role, active, created_at) VALUES (?, ?, ?, ?, 1, ?)",
        (user_id, data.email, data.name, data.role, _ts(now)),
    )
    return get_user(conn, user_id)


def _check_user(conn: sqlite3.Connection, user_id: str, field: str, *, active: bool) -> None:
    row = conn.execute("SELECT active FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise _missing("user", user_id, field)
    if active and not row["active"]:
        raise CrmError("invalid", f"user {user_id!r} is not active", field)


# -- workflows and stages --------------------------------------------------------------


def _stages(conn: sqlite3.Connection, workflow_id: str) -> list[Stage]:
    rows = conn.execute(
        "SELECT id, workflow_id, name, position FROM stages WHERE workflow_id = ? ORDER BY position",
        (workflow_id,),
    )
    return [Stage(**dict(r)) for r in rows]


def _workflow(conn: sqlite3.Connection, row: sqlite3.Row) -> Workflow:
    return Workflow(**dict(row), stages=_stages(conn, row["id"]))


def get_workflow(
    conn: sqlite3.Connection, workflow_id: str, *, field: str | None = None
) -> Workflow:
    row = conn.execute("SELECT * FROM workflows WHERE id = ?", (workflow_id,)).fetchone()
    if row is None:
        raise _missing("workflow", workflow_id, field)
    return _workflow(conn, row)


def find_workflow_by_name(conn: sqlite3.Connection, name: str) -> Workflow | None:
    row = conn.execute("SELECT * FROM workflows WHERE name = ?", (name.strip(),)).fetchone()
    return None if row is None else _workflow(conn, row)


def list_workflows(conn: sqlite3.Connection) -> list[Workflow]:
    rows = conn.execute("SELECT * FROM workflows ORDER BY name COLLATE NOCASE, id").fetchall()
    return [_workflow(conn, r) for r in rows]


def create_workflow(conn: sqlite3.Connection, data: WorkflowIn, *, now: datetime) -> Workflow:
    """A workflow with its stages in the order given."""
    _check_user(conn, data.owner_user_id, "owner_user_id", active=True)
    if find_workflow_by_name(conn, data.name) is not None:
        raise CrmError("conflict", f"a workflow named {data.name!r} already exists", "name")
    workflow_id = new_id("wf", now)
    conn.execute(
        "INSERT INTO workflows (id, name, owner_user_id, created_at) VALUES (?, ?, ?, ?)",
        (workflow_id, data.name, data.owner_user_id, _ts(now)),
    )
    conn.executemany(
        "INSERT INTO stages (id, workflow_id, name, position) VALUES (?, ?, ?, ?)",
        [(new_id("stg", now), workflow_id, name, i) for i, name in enumerate(data.stage_names)],
    )
    return get_workflow(conn, workflow_id)


def update_workflow(conn: sqlite3.Connection, workflow_id: str, patch: WorkflowPatch) -> Workflow:
    current = get_workflow(conn, workflow_id)
    if patch.owner_user_id is not None:
        _check_user(conn, patch.owner_user_id, "owner_user_id", active=True)
    if patch.name is not None:
        other = find_workflow_by_name(conn, patch.name)
        if other is not None and other.id != workflow_id:
            raise CrmError("conflict", f"a workflow named {patch.name!r} already exists", "name")
    conn.execute(
        "UPDATE workflows SET name = ?, owner_user_id = ? WHERE id = ?",
        (patch.name or current.name, patch.owner_user_id or current.owner_user_id, workflow_id),
    )
    return get_workflow(conn, workflow_id)


def get_stage(conn: sqlite3.Connection, stage_id: str, *, field: str | None = None) -> Stage:
    row = conn.execute(
        "SELECT id, workflow_id, name, position FROM stages WHERE id = ?", (stage_id,)
    ).fetchone()
    if row is None:
        raise _missing("stage", stage_id, field)
    return Stage(**dict(row))


def _check_stage_name(workflow: Workflow, name: str, *, except_id: str | None = None) -> None:
    same = workflow.stage_named(name)
    if same is not None and same.id != except_id:
        raise CrmError(
            "conflict", f"workflow {workflow.name!r} already has a stage named {name!r}", "name"
        )


def _renumber(conn: sqlite3.Connection, stage_ids: list[str]) -> None:
    conn.executemany(
        "UPDATE stages SET position = ? WHERE id = ?", [(i, s) for i, s in enumerate(stage_ids)]
    )


def add_stage(
    conn: sqlite3.Connection,
    workflow_id: str,
    name: str,
    *,
    position: int | None = None,
    now: datetime,
) -> Workflow:
    """Add a stage at ``position`` (0 = first; None = last); later stages move down."""
    data = parse(StageIn, {"name": name, "position": position})
    workflow = get_workflow(conn, workflow_id)
    _check_stage_name(workflow, data.name)
    stage_id = new_id("stg", now)
    conn.execute(
        "INSERT INTO stages (id, workflow_id, name, position) VALUES (?, ?, ?, ?)",
        (stage_id, workflow_id, data.name, len(workflow.stages)),
    )
    order = [s.id for s in workflow.stages]
    order.insert(len(order) if data.position is None else data.position, stage_id)
    _renumber(conn, order)
    return get_workflow(conn, workflow_id)


def rename_stage(conn: sqlite3.Connection, stage_id: str, name: str) -> Workflow:
    data = parse(StageIn, {"name": name})
    stage = get_stage(conn, stage_id)
    _check_stage_name(get_workflow(conn, stage.workflow_id), data.name, except_id=stage_id)
    conn.execute("UPDATE stages SET name = ? WHERE id = ?", (data.name, stage_id))
    return get_workflow(conn, stage.workflow_id)


def reorder_stages(conn: sqlite3.Connection, workflow_id: str, stage_ids: list[str]) -> Workflow:
    """Put the workflow's stages in the order of ``stage_ids``, which must list each of
    them exactly once."""
    workflow = get_workflow(conn, workflow_id)
    current = {s.id for s in workflow.stages}
    if len(stage_ids) != len(set(stage_ids)) or set(stage_ids) != current:
        unknown = sorted(set(stage_ids) - current)
        detail = f"; {unknown[0]!r} is not one of them" if unknown else ""
        raise CrmError(
            "invalid",
            f"stage_ids must list each of the {len(current)} stages of workflow "
            f"{workflow.name!r} exactly once{detail}",
            "stage_ids",
        )
    _renumber(conn, list(stage_ids))
    return get_workflow(conn, workflow_id)


def delete_stage(conn: sqlite3.Connection, stage_id: str) -> Workflow:
    """Remove an empty stage; a workflow keeps at least one."""
    stage = get_stage(conn, stage_id)
    workflow = get_workflow(conn, stage.workflow_id)
    if len(workflow.stages) == 1:
        raise CrmError("conflict", f"stage {stage_id!r} is the only stage of its workflow")
    count = conn.execute("SELECT count(*) FROM deals WHERE stage_id = ?", (stage_id,)).fetchone()[0]
    if count:
        raise CrmError(
            "conflict", f"stage {stage_id!r} still holds {count} deal(s); move them first"
        )
    conn.execute("DELETE FROM stages WHERE id = ?", (stage_id,))
    _renumber(conn, [s.id for s in workflow.stages if s.id != stage_id])
    return get_workflow(conn, stage.workflow_id)


def _check_stage_in(conn: sqlite3.Connection, stage_id: str, workflow: Workflow) -> None:
    stage = get_stage(conn, stage_id, field="stage_id")
    if stage.workflow_id != workflow.id:
        other = get_workflow(conn, stage.workflow_id)
        raise CrmError(
            "invalid",
            f"stage {stage_id!r} ({stage.name!r}) belongs to workflow {other.name!r}, "
            f"not {workflow.name!r}",
            "stage_id",
        )


# -- contacts --------------------------------------------------------------------------


def _contact(row: sqlite3.Row) -> Contact:
    data = dict(row)
    data["address"] = Address(**json.loads(data["address"]))
    data["custom_fields"] = json.loads(data["custom_fields"])
    return Contact(**data)


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
    conn: sqlite3.Connection, *, q: str | None = None, limit: int | None = None, offset: int = 0
) -> list[Contact]:
    """Contacts in the order they were created; ``q`` searches names, email and phone."""
    where, params = "", []
    if q:
        where = (
            "WHERE first_name LIKE ?1 ESCAPE '\\' OR last_name LIKE ?1 ESCAPE '\\' "
            "OR (coalesce(first_name, '') || ' ' || coalesce(last_name, '')) LIKE ?1 ESCAPE '\\' "
            "OR email LIKE ?1 ESCAPE '\\' OR phone LIKE ?1 ESCAPE '\\'"
        )
        params.append(_like(q))
    rows = conn.execute(
        f"SELECT * FROM contacts {where} ORDER BY created_at, id LIMIT {_limit(limit)} OFFSET {int(offset)}",
        params,
    )
    return [_contact(r) for r in rows]


def _limit(limit: int | None) -> int:
    return -1 if limit is None else max(0, int(limit))


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


# -- deals -----------------------------------------------------------------------------

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
    return Deal(**data)


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
) -> list[Deal]:
    """Deals in the order they were created, filtered by every argument given. ``q``
    searches title, summary, source and the names and emails of the deal's contacts.
    A filter naming an unknown workflow, stage, user or contact is ``not_found``."""
    where: list[str] = []
    params: dict[str, Any] = {}
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
        where.append(
            "EXISTS (SELECT 1 FROM deal_contacts dc WHERE dc.deal_id = d.id AND dc.contact_id = :contact)"
        )
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
        where.append(
            f"(d.title {like} OR d.summary {like} OR d.source {like} OR EXISTS ("
            "SELECT 1 FROM deal_contacts dc JOIN contacts c ON c.id = dc.contact_id "
            f"WHERE dc.deal_id = d.id AND (c.first_name {like} OR c.last_name {like} "
            f"OR (coalesce(c.first_name, '') || ' ' || coalesce(c.last_name, '')) {like} "
            f"OR c.email {like})))"
        )
        params["q"] = _like(q)
    sql = "SELECT d.* FROM deals d"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY d.created_at, d.id LIMIT {_limit(limit)} OFFSET {int(offset)}"
    return _deals(conn, conn.execute(sql, params).fetchall())


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


# -- notes -----------------------------------------------------------------------------


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
        _check_user(conn, author_user_id, "author_user_id", active=False)
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


# -- documents -------------------------------------------------------------------------


def add_document(conn: sqlite3.Connection, data: DocumentIn, *, now: datetime) -> Document:
    """Record a document's metadata on a deal."""
    get_deal(conn, data.deal_id, field="deal_id")
    doc = Document(id=new_id("doc", now), **data.model_dump(), created_at=_ts(now))
    row = doc.model_dump()
    conn.execute(
        f"INSERT INTO documents ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
        list(row.values()),
    )
    return doc


def get_document(conn: sqlite3.Connection, document_id: str) -> Document:
    row = conn.execute("SELECT * FROM documents WHERE id = ?", (document_id,)).fetchone()
    if row is None:
        raise _missing("document", document_id)
    return Document(**dict(row))


def list_documents(
    conn: sqlite3.Connection, deal_id: str, *, label: str | None = None
) -> list[Document]:
    get_deal(conn, deal_id, field="deal_id")
    sql, params = "SELECT * FROM documents WHERE deal_id = ?", [deal_id]
    if label is not None:
        sql += " AND label = ? COLLATE NOCASE"
        params.append(label)
    rows = conn.execute(sql + " ORDER BY created_at, id", params)
    return [Document(**dict(r)) for r in rows]


# -- inbound referrals -------------------------------------------------------------------


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
