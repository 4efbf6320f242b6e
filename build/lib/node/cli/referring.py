"""Referring from the CRM: ``refnode deals refer`` (a deal, with the client's consent, now
or deferred until it reaches a stage), ``deferred`` (the referrals waiting for their stage)
and ``opportunities`` (deals not referred, yet: why, and when to follow up; ``convert``
refers one as ``deals refer`` does).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, get_args

from node.cli import names
from node.cli.client import CliError
from node.cli.files import read_text
from node.cli.output import Command, Context, Group, choices, print_table
from node.federation.connection_settings import ShareableField
from node.federation.opportunities import ListQuery, OpportunityIn
from node.federation.referring import ConsentIn

# --- a deal, referred now or when it reaches a stage -----------------------------------


def _refer_body(ctx: Context, deal_id: Callable[[], str]) -> dict[str, Any]:
    """The body of ``POST /deals/{id}/refer`` (and of converting an opportunity), with the
    names given resolved to ids; ``deal_id`` gives the deal (for a stage's name)."""
    a = ctx.args
    when = a.when_stage_id
    if when is not None and not names.is_id("stage", when):
        when = names.stage_id(ctx, when, workflow=names.deal_workflow(ctx, deal_id()), option="--when-stage-id")
    return {
        "connection_id": names.connection_id(ctx, a.connection_id),
        "referring_agent_user_id": names.user_id(ctx, a.agent, "--agent"),
        "referral_type": a.type,
        "shared_fields": a.share,
        "message": a.message,
        "consent": {"contact_ids": a.consent_contact_id, "method": a.consent_method,
                    "disclosure_version": a.disclosure_version, "disclosure_text": read_text(a.disclosure_file)},
        "when_stage_id": when,
        "again": a.again,
    }


def _refer(ctx: Context, path: str, body: dict[str, Any]) -> Any:
    """Send a referral request; the API's refusals in terms of this command's options."""
    try:
        return ctx.call("POST", path, body)
    except CliError as exc:
        if exc.field == "referring_agent_user_id" and body["referring_agent_user_id"] is None:
            raise CliError("choose the referring agent, who gets the commission credit: --agent EMAIL "
                           "(only a broker referring is the agent by default)", code=exc.code, field="--agent",
                           status=exc.status) from None
        if exc.code == "already_referred":
            raise CliError(exc.message.replace('say so with "again": true', "add --again"), code=exc.code,
                           field="--again", status=exc.status, detail=exc.detail) from None
        raise


def _referred(data: dict[str, Any]) -> None:
    if "deferred" in data:
        d = data["deferred"]
        print(f"Deferred referral {d['id']}: deal {d['deal_id']} will be referred when it reaches stage "
              f"{d['stage_id']} (cancel with: refnode deferred cancel {d['id']}).")
        return
    r = data["referral"]
    print(f"Referral {r['local_id']} ({r['referral_type']}: {r['offer']['deal']['title']}) is {r['state']}.")
    print(f"Follow it with: refnode referrals show {r['local_id']}")


def cmd_deals_refer(ctx: Context) -> int:
    data = _refer(ctx, f"/api/v1/deals/{ctx.args.id}/refer", _refer_body(ctx, lambda: str(ctx.args.id)))
    ctx.emit(data, lambda: _referred(data))
    return 0


def _refer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--connection-id", required=True, help="the connection to refer to: its name or id")
    p.add_argument("--consent-contact-id", action="append", required=True, metavar="CONTACT_ID",
                   help="a client on the deal who consented (repeat for each); only they travel")
    p.add_argument("--consent-method", required=True, choices=choices(ConsentIn, "method"))
    p.add_argument("--disclosure-version", required=True, help="the privacy disclosure version the client saw")
    p.add_argument("--disclosure-file", required=True, metavar="PATH",
                   help="its exact text ('-' for stdin); only its SHA-256 is kept and sent")
    p.add_argument("--share", action="append", choices=list(get_args(ShareableField)), metavar="FIELD",
                   help="a field to share (repeat; default: all the connection allows): "
                        + ", ".join(get_args(ShareableField)))
    p.add_argument("--message", default="", help="a note for the receiver")
    p.add_argument("--agent", "--agent-user-id", dest="agent", metavar="EMAIL",
                   help="the referring agent, who gets the commission credit: a user's email or id "
                        "(required unless you are a broker referring as yourself)")
    p.add_argument("--type", help="referral type, e.g. mortgage (default: the connection's, else the deal's)")
    p.add_argument("--when-stage-id", help="defer: send when the deal reaches this stage (its name or id)")
    p.add_argument("--again", action="store_true",
                   help="refer the deal to this connection although an earlier referral of it there is live")


# --- deferred referrals ----------------------------------------------------------------


def _deferred_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [[d["id"], d["deal_id"], d["stage_id"], d["connection_id"], d["state"], d["referral_local_id"],
             d["created_at"]] for d in items]


_DEFERRED_HEADERS = ["ID", "DEAL", "WHEN STAGE", "CONNECTION", "STATE", "REFERRAL", "CREATED"]


def cmd_deferred_list(ctx: Context) -> int:
    data = ctx.call("GET", "/api/v1/deferred", deal_id=ctx.args.deal_id)
    ctx.emit(data, lambda: print_table(_DEFERRED_HEADERS, _deferred_rows(data["deferred"])))
    return 0


def cmd_deferred_cancel(ctx: Context) -> int:
    data = ctx.call("POST", f"/api/v1/deferred/{ctx.args.id}/cancel")
    ctx.emit(data, lambda: print(f"Deferred referral {data['deferred']['id']} is {data['deferred']['state']}."))
    return 0


# --- opportunities ---------------------------------------------------------------------


def _opportunity_line(o: dict[str, Any]) -> None:
    due = f", follow up on {o['follow_up_on']}" if o["follow_up_on"] else ""
    print(f"Opportunity {o['id']} ({o['referral_type']}, {o['outcome']}) on deal {o['deal_id']} is {o['state']}{due}.")


def cmd_opportunities_list(ctx: Context) -> int:
    a = ctx.args
    data = ctx.call("GET", "/api/v1/opportunities", state=a.state, due_by=a.due_by, referral_type=a.type,
                    deal_id=a.deal_id)
    ctx.emit(data, lambda: print_table(
        ["ID", "DEAL", "TYPE", "OUTCOME", "STATE", "FOLLOW UP", "REASON"],
        [[o["id"], o["deal_id"], o["referral_type"], o["outcome"], o["state"], o["follow_up_on"],
          o["reason"] or o["closed_reason"]] for o in data["opportunities"]]))
    return 0


def cmd_opportunities_add(ctx: Context) -> int:
    a = ctx.args
    body = {"deal_id": a.deal_id, "contact_id": a.contact_id, "referral_type": a.type, "outcome": a.outcome,
            "reason": a.reason, "follow_up_on": a.follow_up}
    data = ctx.call("POST", "/api/v1/opportunities", {k: v for k, v in body.items() if v is not None})
    ctx.emit(data, lambda: _opportunity_line(data["opportunity"]))
    return 0


def cmd_opportunities_close(ctx: Context) -> int:
    data = ctx.call("POST", f"/api/v1/opportunities/{ctx.args.id}/close", {"reason": ctx.args.reason})
    ctx.emit(data, lambda: _opportunity_line(data["opportunity"]))
    return 0


def cmd_opportunities_convert(ctx: Context) -> int:
    def deal_id() -> str:
        return str(ctx.call("GET", f"/api/v1/opportunities/{ctx.args.id}")["opportunity"]["deal_id"])

    data = _refer(ctx, f"/api/v1/opportunities/{ctx.args.id}/convert", _refer_body(ctx, deal_id))

    def human() -> None:
        _opportunity_line(data["opportunity"])
        _referred(data)

    ctx.emit(data, human)
    return 0


# --- the parser ------------------------------------------------------------------------


def add_commands(commands: Any, group: Group, command: Command) -> None:
    """Add ``deals refer``, ``deferred`` and ``opportunities`` to the parser."""
    g = group("deals", "deals in this node's CRM, and referring them")
    p = command(g, "refer", cmd_deals_refer, "refer a deal to a connected node, with the client's consent")
    p.add_argument("id")
    _refer_options(p)

    g = group("deferred", "referrals waiting for a deal to reach a stage")
    p = command(g, "list", cmd_deferred_list, "list deferred referrals")
    p.add_argument("--deal-id")
    command(g, "cancel", cmd_deferred_cancel, "cancel a deferred referral before it is sent").add_argument("id")

    g = group("opportunities", "deals not referred (yet): why, and when to follow up")
    p = command(g, "list", cmd_opportunities_list, "the follow-up list (open ones unless --state)")
    p.add_argument("--state", choices=choices(ListQuery, "state"))
    p.add_argument("--due-by", help="dated ones due on or before YYYY-MM-DD")
    p.add_argument("--type", help="referral type")
    p.add_argument("--deal-id")
    p = command(g, "add", cmd_opportunities_add, "record why a deal was not referred, or a future opportunity")
    p.add_argument("--deal-id", required=True)
    p.add_argument("--type", required=True, help="referral type, e.g. mortgage")
    p.add_argument("--outcome", required=True, choices=choices(OpportunityIn, "outcome"))
    p.add_argument("--reason", help="why (required for 'other')")
    p.add_argument("--follow-up", help="YYYY-MM-DD (required for 'future', refused otherwise)")
    p.add_argument("--contact-id", help="a contact on the deal")
    p = command(g, "close", cmd_opportunities_close, "stop following up an open opportunity")
    p.add_argument("id")
    p.add_argument("--reason", required=True)
    p = command(g, "convert", cmd_opportunities_convert, "refer an open opportunity's deal (as 'deals refer')")
    p.add_argument("id")
    _refer_options(p)
