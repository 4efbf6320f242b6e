"""Workflows and their ordered stages: read, create and rename a workflow; add, rename,
reorder and delete its stages, keeping their positions 0, 1, 2... in order.

A workflow always keeps at least one stage, and a stage that still holds deals cannot be
deleted. Deals use :func:`_check_stage_in` to refuse a stage of another workflow.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from node.base.ids import new_id
from node.crm.errors import CrmError
from node.crm.models import Stage, StageIn, Workflow, WorkflowIn, WorkflowPatch
from node.crm.parsing import parse
from node.crm.store.sql import _missing, _ts
from node.crm.store.users import _check_user


def _stages(conn: sqlite3.Connection, workflow_id: str) -> list[Stage]:
    rows = conn.execute(
        "SELECT id, workflow_id, name, position, outcome FROM stages WHERE workflow_id = ? ORDER BY position",
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
    outcomes = {name.casefold(): outcome for name, outcome in data.outcomes.items()}
    conn.executemany(
        "INSERT INTO stages (id, workflow_id, name, position, outcome) VALUES (?, ?, ?, ?, ?)",
        [(new_id("stg", now), workflow_id, name, i, outcomes.get(name.casefold()))
         for i, name in enumerate(data.stage_names)],
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
        "SELECT id, workflow_id, name, position, outcome FROM stages WHERE id = ?", (stage_id,)
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
    outcome: str | None = None,
    now: datetime,
) -> Workflow:
    """Add a stage at ``position`` (0 = first; None = last); later stages move down."""
    data = parse(StageIn, {"name": name, "position": position, "outcome": outcome})
    workflow = get_workflow(conn, workflow_id)
    _check_stage_name(workflow, data.name)
    stage_id = new_id("stg", now)
    conn.execute(
        "INSERT INTO stages (id, workflow_id, name, position, outcome) VALUES (?, ?, ?, ?, ?)",
        (stage_id, workflow_id, data.name, len(workflow.stages), data.outcome),
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


def set_stage_outcome(conn: sqlite3.Connection, stage_id: str, outcome: str | None) -> Workflow:
    """Say what reaching the stage means: ``won``, ``lost``, or (None) only progress."""
    stage = get_stage(conn, stage_id)
    data = parse(StageIn, {"name": stage.name, "outcome": outcome})
    conn.execute("UPDATE stages SET outcome = ? WHERE id = ?", (data.outcome, stage_id))
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
