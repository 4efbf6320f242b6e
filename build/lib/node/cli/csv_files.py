"""``refnode export`` and ``import``: the CRM's deals and contacts as CSV files, out of a
node and into one. An import is all or nothing, and the file is streamed to the node, never
read whole; when it is refused, the rows at fault are shown (the first hundred, and how many
more there are).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import Any, BinaryIO

from node.cli.client import CliError
from node.cli.files import open_upload, save_csv
from node.cli.output import Command, Context, Group
from node.cli.progress import progress


def cmd_export(ctx: Context) -> int:
    a = ctx.args
    with progress(f"Exporting {a.what}", None, as_json=ctx.as_json, in_bytes=True) as bar:
        done = [0]

        def received(n: int, length: int | None) -> None:
            done[0] += n
            bar.update(done[0], length)

        text = ctx.client().call("GET", f"/api/v1/export/{a.what}.csv", None, {"q": a.q}, text=True,
                                 received=received)
    save_csv(ctx, a.file, text, lambda rows: f"Exported {rows} {a.what} to {a.file}.")
    return 0


def cmd_import(ctx: Context) -> int:
    a = ctx.args
    try:
        with open_upload(a.file) as file, progress(f"Sending {a.file}", _size(file), as_json=ctx.as_json,
                                                   in_bytes=True) as bar:
            data = ctx.client().call("POST", f"/api/v1/import/{a.what}", csv_file=_Sent(file, bar.advance))
    except CliError as exc:
        problems = exc.detail.get("errors") if isinstance(exc.detail.get("errors"), list) else []
        if problems:  # every row at fault the node lists, not just the first
            exc.message += "".join(f"\n  row {p.get('row')}, {p.get('field')}: {p.get('message')}" for p in problems)
            count = exc.detail.get("error_count")
            if isinstance(count, int) and count > len(problems):
                exc.message += f"\n  ... {count - len(problems)} more problems not shown"
        raise
    ctx.emit(data, lambda: print(f"Imported {data['imported']} {a.what} from {a.file}."))
    return 0


def _size(file: BinaryIO) -> int | None:
    """The file's size, when it is one (not a pipe)."""
    try:
        info = os.fstat(file.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


class _Sent:
    """The file to upload, telling the progress bar of each piece read to be sent."""

    def __init__(self, file: BinaryIO, tell: Callable[[float], None]) -> None:
        self._file, self._tell = file, tell

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._tell(len(data))
        return data


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
