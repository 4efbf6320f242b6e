"""Waiting for a wake-up with a time limit, for the node's background loops (delivery,
mail, SMS, the search indexer)."""

from __future__ import annotations

import asyncio


async def woken(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait for ``event`` at most ``timeout_s`` seconds; whether it is set.

    ``asyncio.timeout`` rather than ``asyncio.wait_for``: the latter makes a task of every
    wait, and on Python 3.11 swallows a cancellation that comes as the event is set, so a
    loop being stopped could go round once more, or for ever."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        pass
    return event.is_set()
