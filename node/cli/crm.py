"""``refnode`` commands for the CRM and referring from it: workflows, contacts, deals,
referring a deal with the client's consent, deferred referrals, opportunities, the
referral report, connection settings, and CSV export and import.

Like the rest of the CLI these are clients of the admin API (one request per command,
two where the CLI takes a name the API takes as an id: ``--owner-email`` is looked up
with ``GET /api/v1/users``, which needs an admin token). :func:`register` adds them to the
parser that :func:`node.cli.main.build_parser` builds.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

from node.cli.client import CliError, read_json_file
from node.cli.output import Context, choices, flatten, print_fields, print_table
from node.federation import reporting
from node.federation.connection_settings import ShareableField
from node.federation.opportunities import ListQuery, OpportunityIn
from node.federation.referring import ConsentIn

Command = Callable[[Any, str, Callable[[Context], int], str], argparse.ArgumentParser]
Group = Callable[[str, str], Any]

# --- small shared pieces ---------------------------------------------------------------


def _user_id(ctx: Context, email: str, option: str) -> str:
    """The id of the user with this email (case-insensitive), for options that take one."""
    try:
        users = ctx.call("GET", "/api/v1/users")["users"]
    except CliError as exc:
        if exc.code == "forbidden":
            raise CliError(f"looking up {option} needs an admin token (GET /api/v1/users is for admins)",
                           code="forbidden", field=option) from None
        raise
    found = [u for u in users if u["email"].casefold() == email.casefold()]
    if not found:
        raise CliError(f"no user with email {email}; see 'refnode users list'", code="unknown_user",
                       field=option)
    return str(found[0]["id"])


def _read_text(path: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text") from None


def _write_text(path: str, text: str) -> None:
    if path == "-":
        sys.stdout.write(text)
        return
    try:
        Path(path).write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None


def _save_csv(ctx: Context, path: str, text: str, said: Callable[[int], str]) -> None:
    """Write a downloaded CSV to ``path`` ("-": standard output) and, for a file, say how
    many rows it holds (``said``, given the count, words it)."""
    _write_text(path, text)
    if path != "-":
        done = {"path": path, "rows": _csv_rows(text)}
        ctx.emit(done, lambda: print(said(done["rows"])))


def _csv_rows(text: str) -> int:
    """Records in a CSV text, header not counted."""
    return max(len(list(csv.reader(io.StringIO(text)))) - 1, 0)


def _name(person: dict[str, Any]) -> str:
    return " ".join(filter(None, [person.get("first_name"), person.get("last_name")])) or person.get("email") or ""


def _notes(notes: list[dict[str, Any]]) -> None:
    print("notes:")
    if not notes:
        print("  (none)")
    for n in notes:
        print(f"  {n['created_at']}  [{n['kind']}] " + n["body"].replace("\n", "\n    "))


# --- workflows ---------------------------------------------------------------------------


def _stage_names(workflow: dict[str, Any]) -> str:
    return " > ".join(s["name"] for s in workflow["stages"])


def _show_workflow(workflow: dict[str, Any]) -> None:
    print_fields([("workflow", workflow["id"]), ("name", workflow["name"]),
                  ("owner", workflow["owner_user_id"]), ("created", workflow["created_at"])], indent="")
    print_table(["POS", "STAGE ID", "STAGE"], [[s["position"], s["id"], s["name"]] for s in workflow["stages"]])


def cmd_workflows_list(ctx: Context) -> int:
    data = ctx.call("GET", "/api/v1/workflows")
    ctx.emit(data, lambda: print_table(["ID", "NAME", "OWNER", "STAGES"],
                                       [[w["id"], w["name"], w["owner_user_id"], _stage_names(w)]
                                        for w in data["workflows"]]))
    return 0


def cmd_workflows_show(ctx: Context) -> int:
    data = ctx.call("GET", f"/api/v1/workflows/{ctx.args.id}")
    ctx.emit(data, lambda: _show_workflow(data["workflow"]))
    return 0


def cmd_workflows_create(ctx: Context) -> int:
    a = ctx.args
    stages = [s.strip() for s in a.stages.split(",") if s.strip()]
    owner = _user_id(ctx, a.owner_email, "--owner-email")
    data = ctx.call("POST", "/api/v1/workflows", {"name": a.name, "owner_user_id": owner, "stage_names": stages})

    def human() -> None:
        print(f"Created workflow {data['workflow']['id']}:")
        _show_workflow(data["workflow"])

    ctx.emit(data, human)
    return 0


def cmd_workflows_add_stage(ctx: Context) -> int:
    a = ctx.args
    data = ctx.call("POST", f"/api/v1/workflows/{a.id}/stages", {"name": a.name, "position": a.position})
    ctx.emit(data, lambda: _show_workflow(data["workflow"]))
    return 0


# --- contacts ----------------------------------------------------------------------------


def cmd_contacts_list(ctx: Context) -> int:
    data = ctx.call("GET", "/api/v1/contacts", q=ctx.args.q)
    ctx.emit(data, lambda: print_table(["ID", "NAME", "EMAIL", "PHONE", "BORN"],
                                       [[c["id"], _name(c), c["email"], c["phone"], c["date_of_birth"]]
                                        for c in data["contacts"]]))
    return 0


def cmd_contacts_show(ctx: Context) -> int:
    client = ctx.client()
    contact = client.call("GET", f"/api/v1/contacts/{ctx.args.id}")["contact"]
    notes = client.call("GET", f"/api/v1/contacts/{ctx.args.id}/notes")["notes"]

    def human() -> None:
        address = ", ".join(v for v in contact["address"].values() if v)
        print_fields([("contact", contact["id"]), ("name", _name(contact)), ("email", contact["email"]),
                      ("phone", contact["phone"]), ("address", address), ("born", contact["date_of_birth"]),
                      *flatten(contact["custom_fields"], "custom."),
                      ("created", contact["created_at"]), ("updated", contact["updated_at"])], indent="")
        _notes(notes)

    ctx.emit({"contact": contact, "notes": notes}, human)
    return 0


def cmd_contacts_add(ctx: Context) -> int:
    a = ctx.args
    body = {"first_name": a.first_name, "last_name": a.last_name, "email": a.email, "phone": a.phone,
            "date_of_birth": a.dob}
    data = ctx.call("POST", "/api/v1/contacts", {k: v for k, v in body.items() if v is not None})
    c = data["contact"]
    ctx.emit(data, lambda: print(f"Added contact {c['id']} ({_name(c)})."))
    return 0


# --- deals -------------------------------------------------------------------------------


def _stages_by_id(ctx: Context) -> dict[str, str]:
    """``stage id -> "workflow / stage"`` for showing deals to people."""
    workflows = ctx.call("GET", "/api/v1/workflows")["workflows"]
    return {s["id"]: f"{w['name']} / {s['name']}" for w in workflows for s in w["stages"]}


def _amount(deal: dict[str, Any]) -> str | None:
    return f"{deal['amount']} {deal.get('currency') or ''}".strip() if deal.get("amount") else None


def cmd_deals_list(ctx: Context) -> int:
    a = ctx.args
    data = ctx.call("GET", "/api/v1/deals", workflow_id=a.workflow_id, stage_id=a.stage_id, q=a.q)

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
        _notes(notes)

    ctx.emit({"deal": deal, "notes": notes}, human)
    return 0


def _deal_line(verb: str, deal: dict[str, Any]) -> Callable[[], None]:
    return lambda: print(f"{verb} deal {deal['id']} ({deal['title']}), now at stage {deal['stage_id']}.")


def cmd_deals_add(ctx: Context) -> int:
    a = ctx.args
    stage_id = a.stage_id
    if stage_id is None:  # the workflow's first stage
        stages = ctx.call("GET", f"/api/v1/workflows/{a.workflow_id}")["workflow"]["stages"]
        stage_id = stages[0]["id"]
    contacts = [{"contact_id": cid, "role": "primary" if i == 0 else "co-applicant"}
                for i, cid in enumerate(a.contact_id or [])]
    body: dict[str, Any] = {"title": a.title, "workflow_id": a.workflow_id, "stage_id": stage_id,
                            "amount": a.amount, "currency": a.currency, "deal_type": a.type, "contacts": contacts}
    if a.owner_email:
        body["owner_user_id"] = _user_id(ctx, a.owner_email, "--owner-email")
    data = ctx.call("POST", "/api/v1/deals", {k: v for k, v in body.items() if v is not None})
    ctx.emit(data, _deal_line("Added", data["deal"]))
    return 0


def cmd_deals_move(ctx: Context) -> int:
    a = ctx.args
    data = ctx.call("POST", f"/api/v1/deals/{a.id}/move", {"stage_id": a.stage_id, "workflow_id": a.workflow_id})
    ctx.emit(data, _deal_line("Moved", data["deal"]))
    return 0


def cmd_deals_note(ctx: Context) -> int:
    a = ctx.args
    data = ctx.call("POST", f"/api/v1/deals/{a.id}/notes", {"body": a.text, "contact_id": a.contact_id})
    ctx.emit(data, lambda: print(f"Added note {data['note']['id']} to deal {a.id}."))
    return 0


def _refer_body(ctx: Context) -> dict[str, Any]:
    """The body of ``POST /deals/{id}/refer`` (and of converting an opportunity)."""
    a = ctx.args
    return {
        "connection_id": a.connection_id,
        "referring_agent_user_id": a.agent_user_id,
        "referral_type": a.type,
        "shared_fields": a.share,
        "message": a.message,
        "consent": {"contact_ids": a.consent_contact_id, "method": a.consent_method,
                    "disclosure_version": a.disclosure_version, "disclosure_text": _read_text(a.disclosure_file)},
        "when_stage_id": a.when_stage_id,
    }


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
    data = ctx.call("POST", f"/api/v1/deals/{ctx.args.id}/refer", _refer_body(ctx))
    ctx.emit(data, lambda: _referred(data))
    return 0


def _refer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--connection-id", required=True, help="the connection to refer to")
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
    p.add_argument("--agent-user-id", help="who gets the commission credit (default: you)")
    p.add_argument("--type", help="referral type, e.g. mortgage (default: the connection's, else the deal's)")
    p.add_argument("--when-stage-id", help="defer: send when the deal reaches this stage")


# --- deferred referrals ------------------------------------------------------------------


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


# --- opportunities -----------------------------------------------------------------------


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
    data = ctx.call("POST", f"/api/v1/opportunities/{ctx.args.id}/convert", _refer_body(ctx))

    def human() -> None:
        _opportunity_line(data["opportunity"])
        _referred(data)

    ctx.emit(data, human)
    return 0


# --- reports -----------------------------------------------------------------------------

_OUTCOMES = ["sent", "won", "lost", "declined", "withdrawn", "in_progress", "conversion"]


def _show_report(data: dict[str, Any]) -> None:
    r = data["range"]
    since = f"from {r['from']}" if r["from"] else "from the start"
    until = f"until {r['to']} (not included)" if r["to"] else "until now"
    print(f"Referrals created {since} {until}" + (f", {r['side']} side" if r["side"] else "") + ":")
    print_table(["SIDE", *(m.upper().replace("_", " ") for m in _OUTCOMES)],
                [[t["side"], *(t[m] for m in _OUTCOMES)] for t in data["totals"]])
    print("\nper connection:")
    print_table(["CONNECTION", "NAME", "SENT", "RECEIVED", "STATES"],
                [[c["connection_id"], c["connection_name"], c["sent"], c["received"],
                  ", ".join(f"{k} {v}" for k, v in c["states"].items() if v)] for c in data["connections"]])
    print("\nper referring agent:")
    print_table(["SIDE", "EMAIL", "NAME", "SENT", "WON", "CONVERSION"],
                [[g["side"], g["email"], g["name"], g["sent"], g["won"], g["conversion"]] for g in data["agents"]])
    print("\nper status:")
    print_table(["SIDE", "STATUS", "CURRENT", "REACHED"],
                [[s["side"], s["status"], s["current"], s["reached"]] for s in data["statuses"]
                 if s["current"] or s["reached"]])


def cmd_reports_referrals(ctx: Context) -> int:
    a = ctx.args
    query = {"from": a.from_date, "to": a.to_date, "side": a.side}
    if a.csv is None:
        data = ctx.call("GET", "/api/v1/reports/referrals", **query)
        ctx.emit(data, lambda: _show_report(data))
        return 0
    text = ctx.client().call("GET", "/api/v1/reports/referrals.csv", None, query, text=True)
    _save_csv(ctx, a.csv, text, lambda rows: f"Wrote the report to {a.csv} ({rows} rows).")
    return 0


# --- connection settings -----------------------------------------------------------------


def cmd_connections_settings(ctx: Context) -> int:
    a = ctx.args
    if a.file is None:
        data = ctx.call("GET", f"/api/v1/connections/{a.id}/settings")
    else:
        body = read_json_file(a.file)
        if not isinstance(body, dict):
            raise CliError(f"{a.file} must hold a JSON object (the body of PUT /api/v1/connections/{{id}}/settings)")
        data = ctx.call("PUT", f"/api/v1/connections/{a.id}/settings", body)
    ctx.emit(data, lambda: print_fields(flatten(data["settings"]), indent=""))
    return 0


# --- CSV export and import ---------------------------------------------------------------


def cmd_export(ctx: Context) -> int:
    a = ctx.args
    text = ctx.client().call("GET", f"/api/v1/export/{a.what}.csv", None, {"q": a.q}, text=True)
    _save_csv(ctx, a.file, text, lambda rows: f"Exported {rows} {a.what} to {a.file}.")
    return 0


def cmd_import(ctx: Context) -> int:
    a = ctx.args
    text = _read_text(a.file)
    try:
        data = ctx.client().call("POST", f"/api/v1/import/{a.what}", csv_body=text)
    except CliError as exc:
        problems = exc.detail.get("errors") if isinstance(exc.detail.get("errors"), list) else []
        if problems:  # every row at fault, not just the first
            exc.message += "".join(f"\n  row {p.get('row')}, {p.get('field')}: {p.get('message')}" for p in problems)
        raise
    ctx.emit(data, lambda: print(f"Imported {data['imported']} {a.what} from {a.file}."))
    return 0


# --- the parser --------------------------------------------------------------------------


def register(commands: Any, group: Group, command: Command) -> None:
    """Add this module's commands; ``group`` and ``command`` are :func:`node.cli.main.build_parser`'s."""
    g = group("workflows", "workflows (pipelines) and their stages")
    command(g, "list", cmd_workflows_list, "list workflows with their stages")
    command(g, "show", cmd_workflows_show, "show a workflow and its stage ids").add_argument("id")
    p = command(g, "create", cmd_workflows_create, "create a workflow with its stages (admins)")
    p.add_argument("name")
    p.add_argument("--owner-email", required=True, help="the workflow's owner, a user of this node")
    p.add_argument("--stages", required=True, help="stage names in order, comma separated: 'New,Contacted,Settled'")
    p = command(g, "add-stage", cmd_workflows_add_stage, "add a stage to a workflow (admins)")
    p.add_argument("id", help="the workflow")
    p.add_argument("name")
    p.add_argument("--position", type=int, help="0 = first (default: last)")

    g = group("contacts", "clients in this node's CRM")
    p = command(g, "list", cmd_contacts_list, "list contacts")
    p.add_argument("--q", help="search names, email and phone")
    command(g, "show", cmd_contacts_show, "show a contact and their notes").add_argument("id")
    p = command(g, "add", cmd_contacts_add, "add a contact")
    p.add_argument("--first-name", required=True)
    p.add_argument("--last-name", required=True)
    p.add_argument("--email")
    p.add_argument("--phone")
    p.add_argument("--dob", help="date of birth, YYYY-MM-DD")

    g = group("deals", "deals in this node's CRM, and referring them")
    p = command(g, "list", cmd_deals_list, "list deals")
    p.add_argument("--workflow-id")
    p.add_argument("--stage-id")
    p.add_argument("--q", help="search title, summary, source and the contacts' names and emails")
    command(g, "show", cmd_deals_show, "show a deal and its notes").add_argument("id")
    p = command(g, "add", cmd_deals_add, "add a deal")
    p.add_argument("--title", required=True)
    p.add_argument("--workflow-id", required=True)
    p.add_argument("--stage-id", help="default: the workflow's first stage")
    p.add_argument("--owner-email", help="the deal's owner, a user of this node")
    p.add_argument("--amount", help="a decimal such as 650000.00 (needs --currency)")
    p.add_argument("--currency", help="ISO 4217, e.g. AUD")
    p.add_argument("--type", help="deal type, a lowercase token such as home-loan")
    p.add_argument("--contact-id", action="append",
                   help="a client on the deal (repeat; the first is primary, the others co-applicants)")
    p = command(g, "move", cmd_deals_move, "move a deal to a stage (sends referrals waiting for it)")
    p.add_argument("id")
    p.add_argument("stage_id")
    p.add_argument("--workflow-id", help="when the stage is in another workflow")
    p = command(g, "note", cmd_deals_note, "add a note to a deal")
    p.add_argument("id")
    p.add_argument("text")
    p.add_argument("--contact-id", help="a note about one contact of the deal")
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

    g = group("reports", "reports")
    p = command(g, "referrals", cmd_reports_referrals, "referrals sent and received, with conversion")
    p.add_argument("--from", dest="from_date", metavar="YYYY-MM-DD", help="first day (UTC) included")
    p.add_argument("--to", dest="to_date", metavar="YYYY-MM-DD", help="first day (UTC) not included")
    p.add_argument("--side", choices=reporting.SIDES)
    p.add_argument("--csv", metavar="FILE", help="write the report as CSV to FILE ('-' for stdout)")

    g = group("connections", "connections with other nodes")
    p = command(g, "settings", cmd_connections_settings,
                "show a connection's settings, or set them from a JSON file (admins)")
    p.add_argument("id")
    p.add_argument("--file", help="JSON body of PUT /api/v1/connections/{id}/settings ('-' for stdin)")

    kinds = ["deals", "contacts"]
    p = command(commands, "export", cmd_export, "export deals or contacts as CSV (admins)")
    p.add_argument("what", choices=kinds)
    p.add_argument("file", help="where to write ('-' for stdout)")
    p.add_argument("--q", help="only the matching ones (as 'list --q')")
    p = command(commands, "import", cmd_import,
                "import deals or contacts from CSV, all or nothing (admins; contacts before deals)")
    p.add_argument("what", choices=kinds)
    p.add_argument("file", help="the CSV file ('-' for stdin)")
