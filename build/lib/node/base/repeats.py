"""Rate-limited logging of an event that repeats: the first is logged in full, then at
most one line per interval says how many more were held back.

Without it one fault can fill a disk: out of file descriptors, asyncio reports
"socket.accept() out of system resource" each time it tries to accept, thousands of
times a second (119 MB of log in 45 s, issue 11). :func:`quiet_loop_errors` puts every
error the event loop reports through this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from node.base.logs import get_logger

log = get_logger("node.repeats")

#: One summary line per kind of event at most this often.
INTERVAL_S = 10.0


class Repeats:
    """Decides which events of a kind to log. :meth:`first` says yes to the first of a
    kind; until a whole interval passes with none of that kind, it says no and counts, and
    at the end of each interval that held some back ``on_summary(kind, count)`` runs."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_summary: Callable[[str, int], None],
                 interval_s: float = INTERVAL_S) -> None:
        self._loop = loop
        self._on_summary = on_summary
        self.interval_s = interval_s
        #: Kinds seen within the current interval, and how many of each were held back.
        self._held: dict[str, int] = {}

    def first(self, kind: str) -> bool:
        """True when this event is to be logged in full; otherwise it is counted."""
        if kind in self._held:
            self._held[kind] += 1
            return False
        self._held[kind] = 0
        self._loop.call_later(self.interval_s, self._end_interval, kind)
        return True

    def _end_interval(self, kind: str) -> None:
        count = self._held.pop(kind, 0)
        if count:
            # Still coming: stay quiet for another interval, then count again.
            self._held[kind] = 0
            self._loop.call_later(self.interval_s, self._end_interval, kind)
            self._on_summary(kind, count)


def quiet_loop_errors(loop: asyncio.AbstractEventLoop, interval_s: float = INTERVAL_S) -> Repeats:
    """Have ``loop`` log each kind of error it reports (its message and exception type)
    once, then at most one line per ``interval_s`` counting the repeats."""
    previous = loop.get_exception_handler()

    def summary(kind: str, count: int) -> None:
        log.warning("event loop error repeated", what=kind, count=count, interval_s=interval_s)

    repeats = Repeats(loop, summary, interval_s)

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        kind = str(context.get("message") or "unknown")[:200]
        if exc is not None:
            kind += f" ({type(exc).__name__})"
        if repeats.first(kind):
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
    return repeats
