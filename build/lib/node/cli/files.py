"""The files a ``refnode`` command reads or writes, named on its command line: a JSON
body or a text (a privacy disclosure) read in, a CSV to import opened to be streamed, a
CSV written out. ``-`` stands for standard input or output. A file that cannot be read
or written is a :class:`~node.cli.client.CliError` that names it.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from node.cli.client import CliError
from node.cli.output import Context


def read_json_file(path: str) -> Any:
    """A JSON document from ``path`` (``-`` for standard input)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"{path} is not valid JSON: {exc}") from None


def read_text(path: str) -> str:
    """The UTF-8 text of ``path`` (``-`` for standard input)."""
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text") from None


@contextmanager
def open_upload(path: str) -> Iterator[BinaryIO]:
    """``path`` (``-`` for standard input) open to be read as bytes, a piece at a time."""
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        file = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    with file:
        yield file


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` (``-`` for standard output), line endings as given."""
    if path == "-":
        sys.stdout.write(text)
        return
    try:
        Path(path).write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None


def save_csv(ctx: Context, path: str, text: str, said: Callable[[int], str]) -> None:
    """Write a downloaded CSV to ``path`` ("-": standard output) and, for a file, say how
    many rows it holds (``said``, given the count, words it)."""
    write_text(path, text)
    if path != "-":
        done = {"path": path, "rows": csv_rows(text)}
        ctx.emit(done, lambda: print(said(done["rows"])))


def csv_rows(text: str) -> int:
    """Records in a CSV text, header not counted."""
    return max(len(list(csv.reader(io.StringIO(text)))) - 1, 0)
