"""``refnode reports referrals``: referrals sent and received, with conversion, per
connection, referring agent and status; printed as tables or written as CSV (``--csv``).
"""

from __future__ import annotations

from typing import Any

from node.cli.files import save_csv
from node.cli.output import Command, Context, Group, print_table
from node.federation.tallies import SIDES

_OUTCOMES = ["sent", "won", "lost", "declined", "withdrawn", "in_progress", "awaiting", "conversion"]


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
    save_csv(ctx, a.csv, text, lambda rows: f"Wrote the report to {a.csv} ({rows} rows).")
    return 0


# --- the parser ------------------------------------------------------------------------


def add_commands(commands: Any, group: Group, command: Command) -> None:
    """Add ``reports`` to the parser."""
    g = group("reports", "reports")
    p = command(g, "referrals", cmd_reports_referrals, "referrals sent and received, with conversion")
    p.add_argument("--from", dest="from_date", metavar="YYYY-MM-DD", help="first day (UTC) included")
    p.add_argument("--to", dest="to_date", metavar="YYYY-MM-DD", help="first day (UTC) not included")
    p.add_argument("--side", choices=SIDES)
    p.add_argument("--csv", metavar="FILE", help="write the report as CSV to FILE ('-' for stdout)")
