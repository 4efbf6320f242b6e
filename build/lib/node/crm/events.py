"""Hooks run on CRM events, synchronously inside the transaction that caused the event.

A hook is a plain function of the connection, the transaction context and the event's
data. It runs after the change is written and before the transaction commits, so what it
writes commits together with the change, and if it raises, the change is rolled back with
everything it wrote and the caller gets the error (a ``CrmError``, ``ApiError`` or
``ProtocolError`` then becomes the API's answer).

The CRM knows nothing of who listens: the caller passes the hooks in. The running node
keeps its list in ``Node.on_deal_moved`` (the federation's deferred referrals and status
updates); hooks run in the order of that list.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from node.crm.models import Deal

#: Called with ``(conn, ctx, before, after)`` when a deal changes stage (or workflow):
#: e.g. to send the referrals waiting for that stage, or to tell a referrer about progress.
#: ``ctx`` is the caller's transaction context (the federation's ``TxContext``), which the
#: CRM passes through without looking into it.
DealMovedHook = Callable[[sqlite3.Connection, Any, Deal, Deal], None]


def fire_deal_moved(conn: sqlite3.Connection, ctx: Any, before: Deal, after: Deal,
                    hooks: Iterable[DealMovedHook]) -> None:
    """Run every hook, unless the deal did not actually move (a move to the stage it is
    already in changes nothing and tells nobody)."""
    if (before.workflow_id, before.stage_id) == (after.workflow_id, after.stage_id):
        return
    for hook in list(hooks):
        hook(conn, ctx, before, after)
