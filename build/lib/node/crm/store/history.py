"""The moves of each deal between stages, for its timeline: written by
:func:`record_move`, a deal-moved hook (``node.crm.events``) the running node runs on
every move, the API's and the console's alike. Stage names are kept as they were at the
move, so a stage renamed or deleted later does not rewrite history.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from node.crm.models import Deal


def _place(conn: sqlite3.Connection, stage_id: str) -> tuple[str, str]:
    row = conn.execute(
        "SELECT s.name, w.name FROM stages s JOIN workflows w ON w.id = s.workflow_id WHERE s.id = ?",
        (stage_id,),
    ).fetchone()
    return (row[0], row[1]) if row else ("(deleted stage)", "")


def record_move(conn: sqlite3.Connection, ctx: Any, before: Deal, after: Deal) -> None:
    """A deal-moved hook: note the move, at the deal's new ``updated_at`` (the move's
    time). A move to another workflow names the workflows too."""
    (old, old_workflow), (new, new_workflow) = _place(conn, before.stage_id), _place(conn, after.stage_id)
    if before.workflow_id != after.workflow_id:
        old, new = f"{old_workflow} · {old}", f"{new_workflow} · {new}"
    conn.execute(
        "INSERT INTO deal_moves (deal_id, from_stage, to_stage, at) VALUES (?, ?, ?, ?)",
        (after.id, old, new, after.updated_at),
    )


def list_moves(conn: sqlite3.Connection, deal_id: str, *, limit: int = 200) -> list[dict[str, str]]:
    """A deal's latest moves, newest first: ``from_stage``, ``to_stage``, ``at``."""
    rows = conn.execute(
        "SELECT from_stage, to_stage, at FROM deal_moves WHERE deal_id = ? ORDER BY at DESC, seq DESC LIMIT ?",
        (deal_id, limit),
    )
    return [dict(r) for r in rows]
