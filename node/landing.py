"""Where an inbound referral lands in the local CRM: workflow, stage, owner, folder, source."""

from __future__ import annotations

import sqlite3
from typing import Any

from node.outbox import TxContext
from node.records import Connection
from protocol.messages import ReferralOffer


def land_offer(conn: sqlite3.Connection, ctx: TxContext, connection: Connection, offer: ReferralOffer) -> str | None:
    """File the offer as a new deal; return its id. (Filled in with the CRM.)"""
    return None


_ = Any
