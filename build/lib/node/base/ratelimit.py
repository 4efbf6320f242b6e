"""Slowing guessers down: failures counted per key, and a wait for a key with too many.

The admin API counts wrong bearer tokens by client address and by token prefix
(``node.http.api``); the inbox counts wrong invitation keys by client address, by
requesting node and by invitation id (``node.federation.runtime``). Each of those is a
*dimension* with its own table, so that keys an attacker makes up at will (token
prefixes, node ids, invitation ids) never push the addresses out.

Each key has a bucket of ``limit`` tries that refills steadily, ``limit`` per
``window_s``: a key may fail ``limit`` times in a row, then once every
``window_s / limit`` seconds, and a key left alone for ``window_s`` is forgiven entirely.
Only failures are counted, never successes, and never the refused attempts themselves:
a client that waits as ``Retry-After`` says gets a real answer on its next try, unless
others keep failing on the same key meanwhile.

Memory is bounded: a dimension keeps at most ``max_keys`` keys, and past that forgets the
one whose last failure is oldest. The counts live in this process's memory and a restart
forgets them (every request they guard is answered by the node process: inbox fronts
pass those on, see ``node.http.fronts``). The time comes from the node's clock only.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from node.base.clock import Clock
from node.base.logs import get_logger

log = get_logger("node.ratelimit")

#: Keys kept per dimension, at most (a few hundred bytes each).
MAX_KEYS = 10_000
#: Rounding slack, in tries.
_EPSILON = 1e-9


@dataclass(slots=True)
class _Tally:
    used: float  # tries used, as of ``at``
    at: float  # seconds since the epoch
    announced: bool  # the block of this run of failures was logged


class FailureLimiter:
    """Failures of one kind (``what``), counted per key in each dimension.

    ``limiter.charge(client="203.0.113.9", invitation="inv_...")`` returns the seconds to
    wait while any key given is over its limit (and counts nothing); otherwise it counts
    the attempt as a failure against each key and returns 0. Counting before the secret is
    checked means that attempts in flight together cannot all slip under the limit; an
    attempt that turns out right is taken back with ``refund``. A key of ``None`` is left
    out. The first refusal of a run of failures is logged, without the keys of the
    dimensions named in ``unlogged``.
    """

    def __init__(self, what: str, *, limit: int, window_s: float, clock: Clock, max_keys: int = MAX_KEYS,
                 unlogged: frozenset[str] = frozenset()) -> None:
        if limit < 1 or window_s <= 0 or max_keys < 1:
            raise ValueError("limit and max_keys are at least 1, window_s is positive")
        self.what = what
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self.unlogged = unlogged
        self._per_s = limit / window_s  # tries regained per second
        self._tables: dict[str, OrderedDict[str, _Tally]] = {}

    def charge(self, **keys: str | None) -> float:
        """0, with this attempt counted as a failure against every key; or, when one of
        them is over its limit, the seconds until all may try (nothing counted)."""
        now = self.clock.now().timestamp()
        given = {d: k for d, k in keys.items() if k is not None}
        wait_s, blocked = 0.0, []
        for dimension, key in given.items():
            tally = self._tally(dimension, key)
            if tally is not None and (wait := self._wait(tally, now)) > 0:
                wait_s = max(wait_s, wait)
                blocked.append((dimension, key, tally))
        for dimension, key, tally in blocked:
            if not tally.announced:
                tally.announced = True
                log.warning("guessing limited", limiter=self.what, by=dimension,
                            who=None if dimension in self.unlogged else key,
                            failures=self.limit, window_s=self.window_s, retry_after_s=math.ceil(wait_s))
        if wait_s:
            return wait_s
        for dimension, key in given.items():
            table = self._tables.setdefault(dimension, OrderedDict())
            tally = table.pop(key, None)
            used = self._used(tally, now) if tally is not None else 0.0
            if tally is None or used <= _EPSILON:
                tally = _Tally(0.0, now, False)  # forgiven: a new run of failures
            tally.used, tally.at = used + 1, now
            table[key] = tally  # last: the most recent failure
            while len(table) > self.max_keys:
                table.popitem(last=False)
        return 0.0

    def refund(self, **keys: str | None) -> None:
        """Take back an attempt that ``charge`` counted and that was not a failure."""
        now = self.clock.now().timestamp()
        for dimension, key in keys.items():
            tally = self._tally(dimension, key) if key is not None else None
            if tally is not None:
                tally.used, tally.at = max(0.0, self._used(tally, now) - 1), now

    def keys(self, dimension: str) -> int:
        """How many keys ``dimension`` holds now."""
        return len(self._tables.get(dimension, ()))

    def _tally(self, dimension: str, key: str) -> _Tally | None:
        table = self._tables.get(dimension)
        return table.get(key) if table is not None else None

    def _used(self, tally: _Tally, now: float) -> float:
        return max(0.0, tally.used - max(0.0, now - tally.at) * self._per_s)

    def _wait(self, tally: _Tally, now: float) -> float:
        over = self._used(tally, now) - (self.limit - 1)
        return over / self._per_s if over > _EPSILON else 0.0


def retry_after(wait_s: float) -> str:
    """``wait_s`` as a ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait_s)))
