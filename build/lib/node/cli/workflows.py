"""``refnode workflows``: the CRM's workflows (pipelines) and their stages, in order.

Creating one takes its owner's email (``--owner-email``), which is looked up with
``GET /api/v1/users`` (:func:`node.cli.names.user_id`), so it needs an admin token.
"""

from __future__ import annotations

from typing import Any

from node.cli import names
from node.cli.output import Command, Context, Group, print_fields, print_table


def _stage_names(workflow: dict[str, Any]) -> str:
    return " > ".join(s["name"] for s in workflow["stages"])


def _show_workflow(workflow: dict[str, Any]) -> None:
    print_fields([("workflow", workflow["id"]), ("name", workflow["name"]),
                  ("owner", workflow["owner_user_id"]), ("created", workflow["created_at"])], indent="")
    print_table(["POS", "STAGE ID", "STAGE", "OUTCOME"],
                [[s["position"], s["id"], s["name"], s.get("outcome") or ""] for s in workflow["stages"]])


def cmd_workflows_list(ctx: Context) -> int:
    data = ctx.call("GET", "/api/v1/workflows")
    ctx.emit(data, lambda: print_table(["ID", "NAME", "OWNER", "STAGES"],
                                       [[w["id"], w["name"], w["owner_user_id"], _stage_names(w)]
                                        for w in data["workflows"]]))
    return 0


def cmd_workflows_show(ctx: Context) -> int:
    data = ctx.call("GET", f"/api/v1/workflows/{names.workflow_id(ctx, ctx.args.id, 'WORKFLOW')}")
    ctx.emit(data, lambda: _show_workflow(data["workflow"]))
    return 0


def cmd_workflows_create(ctx: Context) -> int:
    a = ctx.args
    stages = [s.strip() for s in a.stages.split(",") if s.strip()]
    owner = names.user_id(ctx, a.owner_email, "--owner-email")
    outcomes = {name: "won" for name in a.won_stage or []} | {name: "lost" for name in a.lost_stage or []}
    data = ctx.call("POST", "/api/v1/workflows", {"name": a.name, "owner_user_id": owner, "stage_names": stages,
                                                   "outcomes": outcomes})

    def human() -> None:
        print(f"Created workflow {data['workflow']['id']}:")
        _show_workflow(data["workflow"])

    ctx.emit(data, human)
    return 0


def cmd_workflows_add_stage(ctx: Context) -> int:
    a = ctx.args
    data = ctx.call("POST", f"/api/v1/workflows/{names.workflow_id(ctx, a.id, 'WORKFLOW')}/stages",
                    {"name": a.name, "position": a.position, "outcome": a.outcome})
    ctx.emit(data, lambda: _show_workflow(data["workflow"]))
    return 0


# --- the parser ------------------------------------------------------------------------


def add_commands(commands: Any, group: Group, command: Command) -> None:
    """Add ``workflows`` to the parser."""
    g = group("workflows", "workflows (pipelines) and their stages")
    command(g, "list", cmd_workflows_list, "list workflows with their stages")
    command(g, "show", cmd_workflows_show, "show a workflow and its stage ids").add_argument(
        "id", metavar="WORKFLOW", help="the workflow's name or id")
    p = command(g, "create", cmd_workflows_create, "create a workflow with its stages (admins)")
    p.add_argument("name")
    p.add_argument("--owner-email", required=True, help="the workflow's owner, a user of this node")
    p.add_argument("--stages", required=True, help="stage names in order, comma separated: 'New,Contacted,Settled'")
    p.add_argument("--won-stage", action="append", metavar="NAME",
                   help="a stage that means the deal is won (e.g. Settled): a referred deal reaching it reports won")
    p.add_argument("--lost-stage", action="append", metavar="NAME", help="a stage that means the deal is lost")
    p = command(g, "add-stage", cmd_workflows_add_stage, "add a stage to a workflow (admins)")
    p.add_argument("id", metavar="WORKFLOW", help="the workflow's name or id")
    p.add_argument("name")
    p.add_argument("--position", type=int, help="0 = first (default: last)")
    p.add_argument("--outcome", choices=["won", "lost"], help="what reaching this stage means for the deal")
