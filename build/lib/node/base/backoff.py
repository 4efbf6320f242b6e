"""Retry delays: a pure function of the attempt count (and a random draw the caller makes).

Exponential with "equal jitter": the n-th retry waits between half and all of
``min(cap, base * 2**(n-1))``. Capped at hours, never days: after an outage a peer is
tried again within ``cap`` seconds, and as soon as it is heard from, at once.
"""

from __future__ import annotations


def retry_delay_s(attempt: int, *, base_s: float, cap_s: float, draw: float,
                  retry_after_s: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry).

    ``draw`` is a uniform random number in [0, 1). A peer's ``Retry-After`` is honoured:
    we never come back sooner than it asks, though never later than ``cap_s`` because of it
    unless it asks for more.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if not 0.0 <= draw < 1.0:
        raise ValueError("draw is in [0, 1)")
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt - 1, 62))
    delay = ceiling / 2 + draw * ceiling / 2
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay
