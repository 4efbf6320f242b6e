"""Hooks other code registers on CRM events, run synchronously inside the transaction that
caused the event.

A hook is a plain function of the connection, the transaction context and the event's
data. It runs after the change is written and before the transaction commits, so what it
writes commits together with the change, and if it raises, the change is rolled back with
everything it wrote and the caller gets the error (a ``CrmError``, ``ApiError`` or
``ProtocolError`` then becomes the API's answer).

Register at import time, e.g. ``events.on_deal_moved.append(referring.on_deal_moved)``.
Hooks run in the order they were registered.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from node.crm.models import Deal

if TYPE_CHECKING:  # node.outbox pulls in the federation core; the CRM only needs the type
    from node.outbox import TxContext

DealMovedHook = Callable[[sqlite3.Connection, "TxContext", Deal, Deal], None]

#: Called with ``(conn, ctx, before, after)`` when a deal changes stage (or workflow):
#: e.g. to send the referrals waiting for that stage, or to tell a referrer about progress.
on_deal_moved: list[DealMovedHook] = []


def fire_deal_moved(conn: sqlite3.Connection, ctx: TxContext, before: Deal, after: Deal) -> None:
    """Run every ``on_deal_moved`` hook, unless the deal did not actually move (a move to
    the stage it is already in changes nothing and tells nobody)."""
    if (before.workflow_id, before.stage_id) == (after.workflow_id, after.stage_id):
        return
    for hook in list(on_deal_moved):
        hook(conn, ctx, before, after)
