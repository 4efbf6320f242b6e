"""Progress bars for the CLI's long jobs (CSV import and export, backup, restore, receipts
verify), drawn by ``rich`` on standard error.

Only for a person watching: when standard output and standard error are both terminals
and ``--json`` is not given. Otherwise :func:`progress` gives a bar that draws nothing, so
what a script reads is the same as before, byte for byte.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Bar(Protocol):
    def advance(self, amount: float) -> None: ...

    def update(self, done: float, total: float | None = None) -> None: ...


class _Silent:
    def advance(self, amount: float) -> None:
        pass

    def update(self, done: float, total: float | None = None) -> None:
        pass


class _Drawn:
    def __init__(self, progress: object, task: object) -> None:
        self._progress = progress
        self._task = task

    def advance(self, amount: float) -> None:
        self._progress.advance(self._task, amount)  # type: ignore[attr-defined]

    def update(self, done: float, total: float | None = None) -> None:
        self._progress.update(self._task, completed=done, total=total)  # type: ignore[attr-defined]


def shown(as_json: bool) -> bool:
    """Whether bars are drawn: a person at a terminal, not a script."""
    return not as_json and sys.stdout.isatty() and sys.stderr.isatty()


@contextmanager
def progress(description: str, total: float | None, *, as_json: bool, in_bytes: bool = False) -> Iterator[Bar]:
    """A bar for one job of ``total`` steps (bytes if ``in_bytes``; None: not known)."""
    if not shown(as_json):
        yield _Silent()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    amounts = (DownloadColumn(), TransferSpeedColumn()) if in_bytes else (MofNCompleteColumn(),)
    columns = (TextColumn("{task.description}"), BarColumn(), *amounts, TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bars:
        yield _Drawn(bars, bars.add_task(description, total=total))
