"""``refnode refer`` and ``referrals``: sending a referral described in a JSON file, and
following referrals sent and received, with their status timeline; on a received one,
reporting progress back to the referrer (``referrals status``).

Referring a deal from the CRM, with the client's consent, is ``deals refer`` in
:mod:`node.cli.referring`.
"""

from __future__ import annotations

from typing import Any

from node.cli import names
from node.cli.client import CliError
from node.cli.files import read_json_file
from node.cli.output import Command, Context, Group, choices, print_fields, print_table
from node.http import federation_api
from node.storage.records import Referral
from protocol.keys import fingerprint_of


def cmd_refer(ctx: Context) -> int:
    body = read_json_file(ctx.args.file)
    if not isinstance(body, dict):
        raise CliError(f"{ctx.args.file} must hold a JSON object (the body of POST /api/v1/referrals)")
    if ctx.args.connection_id:
        body["connection_id"] = names.connection_id(ctx, ctx.args.connection_id)
    data = ctx.call("POST", "/api/v1/referrals", body)

    def human() -> None:
        r = data["referral"]
        print(f"Referral {r['local_id']} ({r['referral_type']}: {r['offer']['deal']['title']}) is {r['state']}.")
        print_fields([("referral id", r["id"]), ("connection", r["connection_id"]), ("envelope", r["envelope_id"])])
        print(f"Follow it with: refnode referrals show {r['local_id']}")

    ctx.emit(data, human)
    return 0


def cmd_referrals_list(ctx: Context) -> int:
    page = {k: None if v is None else str(v) for k, v in (("limit", ctx.args.limit), ("offset", ctx.args.offset))}
    data = ctx.call("GET", "/api/v1/referrals", side=ctx.args.side, **page)
    ctx.emit(data, lambda: print_table(
        ["LOCAL ID", "SIDE", "STATE", "TYPE", "DEAL", "CONNECTION", "UPDATED"],
        [[r["local_id"], r["side"], r["state"], r["referral_type"], r["offer"]["deal"]["title"],
          r["connection_id"], r["updated_at"]] for r in data["referrals"]]))
    return 0


def cmd_referrals_show(ctx: Context) -> int:
    data = ctx.call("GET", f"/api/v1/referrals/{ctx.args.local_id}")

    def human() -> None:
        r, offer = data["referral"], data["referral"]["offer"]
        deal = offer["deal"]
        amount = f"{deal.get('amount')} {deal.get('currency') or ''}".strip() if deal.get("amount") else None
        clients = ", ".join(" ".join(filter(None, [c.get("first_name"), c.get("last_name")])) or c["ref"]
                            for c in offer["contacts"])
        print_fields([("referral", r["local_id"]), ("side", r["side"]), ("state", r["state"]),
                      ("type", r["referral_type"]), ("deal", deal["title"]), ("amount", amount),
                      ("clients", clients), ("referring agent", offer["referring_agent"]["name"]),
                      ("connection", r["connection_id"]), ("peer", fingerprint_of(r["peer_node_id"])),
                      ("created", r["created_at"]), ("updated", r["updated_at"])], indent="")
        print("timeline:")
        if not data["timeline"]:
            print("  (no status updates yet)")
        for e in data["timeline"]:
            extra = "; ".join(filter(None, [e.get("stage"), e.get("reason")]))
            print(f"  {e['seq']}. {e['at']}  {e['status']}" + (f"  ({extra})" if extra else ""))

    ctx.emit(data, human)
    return 0


def cmd_referrals_status(ctx: Context) -> int:
    a = ctx.args
    data = ctx.call("POST", f"/api/v1/referrals/{a.local_id}/status",
                    {"status": a.status, "stage": a.stage, "reason": a.reason})
    ctx.emit(data, lambda: print(f"Referral {a.local_id} is now {data['referral']['state']}; "
                                 "the update is on its way to the referrer."))
    return 0


# --- the parser ------------------------------------------------------------------------


def add_commands(commands: Any, group: Group, command: Command) -> None:
    """Add ``refer`` and ``referrals`` to the parser."""
    p = command(commands, "refer", cmd_refer, "refer a client: send a referral described in a JSON file")
    p.add_argument("--file", required=True, help="JSON body of POST /api/v1/referrals ('-' for stdin)")
    p.add_argument("--connection-id", help="set or override the file's connection_id (a connection's name or id)")

    g = group("referrals", "referrals sent and received")
    p = command(g, "list", cmd_referrals_list, "list referrals, oldest first, a page at a time")
    p.add_argument("--side", choices=choices(Referral, "side"))
    p.add_argument("--limit", type=int, help="how many (default 100, at most 1000)")
    p.add_argument("--offset", type=int, help="how many to skip")
    command(g, "show", cmd_referrals_show, "show a referral and its status timeline").add_argument("local_id")
    p = command(g, "status", cmd_referrals_status, "report progress on a received referral")
    p.add_argument("local_id")
    p.add_argument("status", choices=choices(federation_api.StatusIn, "status"))
    p.add_argument("--stage", help="free text, e.g. 'valuation ordered'")
    p.add_argument("--reason", help="why (for declined, lost, withdrawn)")
