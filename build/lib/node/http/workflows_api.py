"""Admin-API routes for the CRM's workflows and their stages: creating and changing them
is for admins; anyone may read them."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import ConfigDict, Field, model_validator

from node.base.inputs import NotNull
from node.crm import store as crm
from node.crm.models import Id, Model, Name, Outcome, StageIn, WorkflowIn, WorkflowPatch
from node.federation.runtime import Node
from node.http.api import Caller, Route
from node.http.json_answers import model_json, models_json


class StagePatch(Model):
    """Only the fields given change; ``"outcome": null`` makes the stage mean progress only."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    name: Annotated[Name | None, NotNull()] = None
    outcome: Outcome | None = None

    @model_validator(mode="after")
    def _something(self) -> StagePatch:
        if not self.model_fields_set:
            raise ValueError("give name, outcome or both")
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be null")
        return self


class StageOrder(Model):
    #: Every stage of the workflow, each once, in the new order.
    stage_ids: Annotated[list[Id], Field(min_length=1, max_length=50)]


async def create_workflow(
    request: web.Request, node: Node, caller: Caller, body: WorkflowIn
) -> Any:
    workflow = await node.transact(lambda conn, ctx: crm.create_workflow(conn, body, now=ctx.now))
    return {"workflow": model_json(workflow)}


async def list_workflows(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    return {"workflows": models_json(await node.db.read(crm.list_workflows))}


async def get_workflow(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    workflow_id = request.match_info["id"]
    return {"workflow": model_json(await node.db.read(lambda conn: crm.get_workflow(conn, workflow_id)))}


async def update_workflow(
    request: web.Request, node: Node, caller: Caller, body: WorkflowPatch
) -> Any:
    workflow_id = request.match_info["id"]
    workflow = await node.transact(lambda conn, ctx: crm.update_workflow(conn, workflow_id, body))
    return {"workflow": model_json(workflow)}


async def add_stage(request: web.Request, node: Node, caller: Caller, body: StageIn) -> Any:
    workflow_id = request.match_info["id"]
    workflow = await node.transact(
        lambda conn, ctx: crm.add_stage(
            conn, workflow_id, body.name, position=body.position, outcome=body.outcome, now=ctx.now
        )
    )
    return {"workflow": model_json(workflow)}


async def update_stage(request: web.Request, node: Node, caller: Caller, body: StagePatch) -> Any:
    stage_id = request.match_info["id"]

    def update(conn: Any, ctx: Any) -> Any:
        workflow = None
        if body.name is not None:
            workflow = crm.rename_stage(conn, stage_id, body.name)
        if "outcome" in body.model_fields_set:
            workflow = crm.set_stage_outcome(conn, stage_id, body.outcome)
        return workflow

    return {"workflow": model_json(await node.transact(update))}


async def reorder_stages(request: web.Request, node: Node, caller: Caller, body: StageOrder) -> Any:
    workflow_id = request.match_info["id"]
    workflow = await node.transact(
        lambda conn, ctx: crm.reorder_stages(conn, workflow_id, body.stage_ids)
    )
    return {"workflow": model_json(workflow)}


async def delete_stage(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    stage_id = request.match_info["id"]
    workflow = await node.transact(lambda conn, ctx: crm.delete_stage(conn, stage_id))
    return {"workflow": model_json(workflow)}


# fmt: off
ROUTES: list[Route] = [
    Route("POST", "/api/v1/workflows", create_workflow, "Create a workflow with its stages in order (outcomes: stage name -> won or lost)",
          WorkflowIn, admin_only=True, status=201),
    Route("GET", "/api/v1/workflows", list_workflows, "List workflows with their stages"),
    Route("GET", "/api/v1/workflows/{id}", get_workflow, "One workflow with its stages"),
    Route("PATCH", "/api/v1/workflows/{id}", update_workflow, "Rename a workflow or change its owner",
          WorkflowPatch, admin_only=True),
    Route("POST", "/api/v1/workflows/{id}/stages", add_stage,
          "Add a stage at position (0 = first; default last), with an outcome if it ends the deal", StageIn, admin_only=True, status=201),
    Route("POST", "/api/v1/workflows/{id}/stages/order", reorder_stages,
          "Reorder the stages: stage_ids lists every stage once", StageOrder, admin_only=True),
    Route("PATCH", "/api/v1/stages/{id}", update_stage,
          "Rename a stage, or say what reaching it means (outcome: won, lost or null)", StagePatch,
          admin_only=True),
    Route("DELETE", "/api/v1/stages/{id}", delete_stage, "Delete an empty stage (a workflow keeps one)",
          admin_only=True),
]
# fmt: on
