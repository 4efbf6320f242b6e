"""``refnode deals``: the deals in the node's CRM, each at a stage of a workflow; listed,
shown with their notes, added, moved between stages, and noted.

Moving a deal sends the referrals deferred until it reaches that stage. Referring a deal
(``deals refer``) is in :mod:`node.cli.referring`. ``--owner-email`` is looked up with
``GET /api/v1/users`` (:func:`node.cli.names.user_id`), which needs an admin token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from node.cli import names
from node.cli.output import Command, Context, Group, print_fields, print_notes, print_table


def _stages_by_id(ctx: Context) -> dict[str, str]:
    """``stage id -> "workflow / stage"`` for showing deals to people."""
    workflows = ctx.call("GET", "/api/v1/workflows")["workflows"]
    return {s["id"]: f"{w['name']} / {s['name']}" for w in workflows for s in w["stages"]}


def _amount(deal: dict[str, Any]) -> str | None:
    return f"{deal['amount']} {deal.get('currency') or ''}".strip() if deal.get("amount") else None


def cmd_deals_list(ctx: Context) -> int:
    a = ctx.args
    workflow = names.workflow_id(ctx, a.workflow_id)
    data = ctx.call("GET", "/api/v1/deals", workflow_id=workflow,
                    stage_id=names.stage_id(ctx, a.stage_id, workflow=workflow), q=a.q)

    def human() -> None:
        stages = _stages_by_id(ctx)
        print_table(["ID", "TITLE", "STAGE", "AMOUNT", "OWNER", "ORIGIN", "UPDATED"],
                    [[d["id"], d["title"], stages.get(d["stage_id"], d["stage_id"]), _amount(d),
                      d["owner_user_id"], d["origin"], d["updated_at"]] for d in data["deals"]])

    ctx.emit(data, human)
    return 0


def cmd_deals_show(ctx: Context) -> int:
    client = ctx.client()
    deal = client.call("GET", f"/api/v1/deals/{ctx.args.id}")["deal"]
    notes = client.call("GET", f"/api/v1/deals/{ctx.args.id}/notes")["notes"]

    def human() -> None:
        referral = deal.get("referral") or {}
        print_fields([("deal", deal["id"]), ("title", deal["title"]), ("type", deal["deal_type"]),
                      ("amount", _amount(deal)),
                      ("stage", _stages_by_id(ctx).get(deal["stage_id"], deal["stage_id"])),
                      ("owner", deal["owner_user_id"]), ("origin", deal["origin"]),
                      ("referral", referral.get("referral_id")),
                      ("contacts", ", ".join(f"{c['contact_id']} ({c['role']})" for c in deal["contacts"])),
                      ("labels", ", ".join(deal["labels"])), ("source", deal["source"]),
                      ("created", deal["created_at"]), ("updated", deal["updated_at"])], indent="")
        print_notes(notes)

    ctx.emit({"deal": deal, "notes": notes}, human)
    return 0


def _deal_line(verb: str, deal: dict[str, Any]) -> Callable[[], None]:
    return lambda: print(f"{verb} deal {deal['id']} ({deal['title']}), now at stage {deal['stage_id']}.")


def cmd_deals_add(ctx: Context) -> int:
    a = ctx.args
    workflow = names.workflow_id(ctx, a.workflow_id)
    stage_id = names.stage_id(ctx, a.stage_id, workflow=workflow)
    if stage_id is None:  # the workflow's first stage
        stages = ctx.call("GET", f"/api/v1/workflows/{workflow}")["workflow"]["stages"]
        stage_id = stages[0]["id"]
    contacts = [{"contact_id": cid, "role": "primary" if i == 0 else "co-applicant"}
                for i, cid in enumerate(a.contact_id or [])]
    body: dict[str, Any] = {"title": a.title, "workflow_id": workflow, "stage_id": stage_id,
                            "amount": a.amount, "currency": a.currency, "deal_type": a.type, "contacts": contacts}
    if a.owner_email:
        body["owner_user_id"] = names.user_id(ctx, a.owner_email, "--owner-email")
    data = ctx.call("POST", "/api/v1/deals", {k: v for k, v in body.items() if v is not None})
    ctx.emit(data, _deal_line("Added", data["deal"]))
    return 0


def cmd_deals_move(ctx: Context) -> int:
    a = ctx.args
    workflow = names.workflow_id(ctx, a.workflow_id)
    stage = a.stage_id
    if not names.is_id("stage", stage):  # a name: of the deal's workflow, unless another is named
        stage = names.stage_id(ctx, stage, workflow=workflow or names.deal_workflow(ctx, a.id), option="STAGE")
    data = ctx.call("POST", f"/api/v1/deals/{a.id}/move", {"stage_id": stage, "workflow_id": workflow})
    ctx.emit(data, _deal_line("Moved", data["deal"]))
    return 0


def cmd_deals_note(ctx: Context) -> int:
    a = ctx.args
    data = ctx.call("POST", f"/api/v1/deals/{a.id}/notes", {"body": a.text, "contact_id": a.contact_id})
    ctx.emit(data, lambda: print(f"Added note {data['note']['id']} to deal {a.id}."))
    return 0


# --- the parser ------------------------------------------------------------------------


def add_commands(commands: Any, group: Group, command: Command) -> None:
    """Add ``deals`` (all but ``deals refer``) to the parser."""
    g = group("deals", "deals in this node's CRM, and referring them")
    p = command(g, "list", cmd_deals_list, "list deals")
    p.add_argument("--workflow-id", help="a workflow's name or id")
    p.add_argument("--stage-id", help="a stage's name or id")
    p.add_argument("--q", help="search title, summary, source and the contacts' names and emails")
    command(g, "show", cmd_deals_show, "show a deal and its notes").add_argument("id")
    p = command(g, "add", cmd_deals_add, "add a deal")
    p.add_argument("--title", required=True)
    p.add_argument("--workflow-id", required=True, help="the workflow's name or id")
    p.add_argument("--stage-id", help="a stage's name or id (default: the workflow's first stage)")
    p.add_argument("--owner-email", help="the deal's owner, a user of this node")
    p.add_argument("--amount", help="a decimal such as 650000.00 (needs --currency)")
    p.add_argument("--currency", help="ISO 4217, e.g. AUD")
    p.add_argument("--type", help="deal type, a lowercase token such as home-loan")
    p.add_argument("--contact-id", action="append",
                   help="a client on the deal (repeat; the first is primary, the others co-applicants)")
    p = command(g, "move", cmd_deals_move, "move a deal to a stage (sends referrals waiting for it)")
    p.add_argument("id")
    p.add_argument("stage_id", metavar="STAGE", help="the stage's name (in the deal's workflow) or id")
    p.add_argument("--workflow-id", help="when the stage is in another workflow: its name or id")
    p = command(g, "note", cmd_deals_note, "add a note to a deal")
    p.add_argument("id")
    p.add_argument("text")
    p.add_argument("--contact-id", help="a note about one contact of the deal")
