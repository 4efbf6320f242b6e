"""``refnode export`` and ``import``: the CRM's deals and contacts as CSV files, out of a
node and into one. An import is all or nothing; when it is refused, every row at fault is
shown, not just the first.
"""

from __future__ import annotations

from typing import Any

from node.cli.client import CliError
from node.cli.files import read_text, save_csv
from node.cli.output import Command, Context, Group


def cmd_export(ctx: Context) -> int:
    a = ctx.args
    text = ctx.client().call("GET", f"/api/v1/export/{a.what}.csv", None, {"q": a.q}, text=True)
    save_csv(ctx, a.file, text, lambda rows: f"Exported {rows} {a.what} to {a.file}.")
    return 0


def cmd_import(ctx: Context) -> int:
    a = ctx.args
    text = read_text(a.file)
    try:
        data = ctx.client().call("POST", f"/api/v1/import/{a.what}", csv_body=text)
    except CliError as exc:
        problems = exc.detail.get("errors") if isinstance(exc.detail.get("errors"), list) else []
        if problems:  # every row at fault, not just the first
            exc.message += "".join(f"\n  row {p.get('row')}, {p.get('field')}: {p.get('message')}" for p in problems)
        raise
    ctx.emit(data, lambda: print(f"Imported {data['imported']} {a.what} from {a.file}."))
    return 0


# --- the parser ------------------------------------------------------------------------


def add_commands(commands: Any, group: Group, command: Command) -> None:
    """Add ``export`` and ``import`` to the parser."""
    kinds = ["deals", "contacts"]
    p = command(commands, "export", cmd_export, "export deals or contacts as CSV (admins)")
    p.add_argument("what", choices=kinds)
    p.add_argument("file", help="where to write ('-' for stdout)")
    p.add_argument("--q", help="only the matching ones (as 'list --q')")
    p = command(commands, "import", cmd_import,
                "import deals or contacts from CSV, all or nothing (admins; contacts before deals)")
    p.add_argument("what", choices=kinds)
    p.add_argument("file", help="the CSV file ('-' for stdin)")
