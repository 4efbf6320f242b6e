"""``POST /deals/{id}/move`` runs the node's ``on_deal_moved`` hooks inside the
move's own transaction: what a hook writes commits with the move, and a hook that
raises takes the move back with it."""

from __future__ import annotations

import sqlite3
from typing import Any

from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.models import Deal, NoteIn

from .conftest import snapshot


async def a_deal(node_factory: Any) -> tuple[Any, dict[str, Any], str]:
    a = await node_factory("Alpha")
    admin = (await a.api("GET", "/api/v1/users"))["users"][0]["id"]
    wf = (
        await a.api(
            "POST",
            "/api/v1/workflows",
            {
                "name": "Home loans",
                "owner_user_id": admin,
                "stage_names": ["New", "Lodged", "Settled"],
            },
            expect=201,
        )
    )["workflow"]
    deal = {"title": "Purchase", "workflow_id": wf["id"], "stage_id": wf["stages"][0]["id"]}
    return a, wf, (await a.api("POST", "/api/v1/deals", deal, expect=201))["deal"]["id"]


async def test_hooks_see_the_move_and_write_in_its_transaction(node_factory):
    a, wf, deal_id = await a_deal(node_factory)
    new, lodged, settled = (s["id"] for s in wf["stages"])
    seen: list[tuple[str, str, str]] = []

    def record(conn: sqlite3.Connection, ctx: Any, before: Deal, after: Deal) -> None:
        stored = crm.get_deal(conn, after.id).stage_id  # the move is already written
        seen.append((before.stage_id, after.stage_id, stored))
        crm.add_note(
            conn,
            NoteIn(deal_id=after.id, body=f"moved to {after.stage_id}"),
            now=ctx.now,
            kind="system",
        )

    a.node.on_deal_moved.append(record)
    moved = (await a.api("POST", f"/api/v1/deals/{deal_id}/move", {"stage_id": lodged}))["deal"]
    assert moved["stage_id"] == lodged
    assert seen == [(new, lodged, lodged)]
    notes = (await a.api("GET", f"/api/v1/deals/{deal_id}/notes"))["notes"]
    assert [(n["kind"], n["body"]) for n in notes] == [("system", f"moved to {lodged}")]

    # A move to the stage it is in changes nothing and tells no hook.
    await a.api("POST", f"/api/v1/deals/{deal_id}/move", {"stage_id": lodged})
    assert len(seen) == 1
    # Changing other fields is not a move either.
    await a.api("PATCH", f"/api/v1/deals/{deal_id}", {"title": "Purchase, 12 Harbour St"})
    assert len(seen) == 1
    await a.api("POST", f"/api/v1/deals/{deal_id}/move", {"stage_id": settled})
    assert seen[-1] == (lodged, settled, settled)


async def test_a_hook_that_refuses_takes_the_move_back(node_factory):
    a, wf, deal_id = await a_deal(node_factory)
    lodged = wf["stages"][1]["id"]

    def note_then_refuse(conn: sqlite3.Connection, ctx: Any, before: Deal, after: Deal) -> None:
        crm.add_note(
            conn, NoteIn(deal_id=after.id, body="half-written"), now=ctx.now, kind="system"
        )
        raise CrmError(
            "conflict", "the referral waiting for this stage cannot be sent yet", "stage_id"
        )

    a.node.on_deal_moved.append(note_then_refuse)
    before = await snapshot(a)
    refused = await a.api("POST", f"/api/v1/deals/{deal_id}/move", {"stage_id": lodged}, expect=409)
    assert refused["error"] == {
        "code": "conflict",
        "field": "stage_id",
        "message": "the referral waiting for this stage cannot be sent yet",
    }
    assert await snapshot(a) == before
    assert (await a.api("GET", f"/api/v1/deals/{deal_id}"))["deal"]["stage_id"] == wf["stages"][0][
        "id"
    ]
