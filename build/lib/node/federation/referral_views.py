"""Referrals as the console lists and shows them: with the names a person knows (deal,
organisation, referring agent, owner), never only ids.

- :func:`list_referrals`: sent or received, newest first, optionally of one status;
- :func:`waiting_to_send`: deferred referrals that wait for their deal to reach a stage;
- :func:`referral_page`: one referral with its timeline, what it shared, and for a
  received one the filed deal with its workflow's stages (the receiver's worklist).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.models import Deal, Workflow
from node.federation.sharing import Group, carried, client_name
from node.storage import store
from node.storage.records import Referral, ReferralEvent
from protocol.errors import LocalProtocolError
from protocol.states import ReferralState, Side, referral_next

#: The sides as the console names them.
SIDES = {"sent": "sender", "received": "receiver"}
#: Statuses a person may filter by, per side, in the order a referral passes them.
STATUSES = {
    "sent": ("sent", "delivered", "failed", "accepted", "in-progress", "declined", "won", "lost", "withdrawn"),
    "received": ("received", "accepted", "in-progress", "declined", "won", "lost", "withdrawn"),
}
PAGE_SIZE = 50


def _clients(offer: dict[str, Any]) -> str:
    names = [client_name(c, "") for c in offer.get("contacts", [])]
    return ", ".join(n for n in names if n)


def list_referrals(conn: sqlite3.Connection, side: str, *, status: str | None = None, offset: int = 0,
                   limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """One page of referrals of a side (``sent``/``received``), newest first."""
    where, params = ["r.side = ?"], [SIDES[side]]
    if status:
        where.append("r.state = ?")
        params.append(status)
    rows = conn.execute(
        f"""SELECT r.local_id, r.state, r.referral_type, r.created_at, r.updated_at, r.offer,
                   c.name AS connection, COALESCE(d.title, json_extract(r.offer, '$.deal.title')) AS deal,
                   json_extract(r.offer, '$.referring_agent.name') AS agent, u.name AS owner
            FROM referrals r LEFT JOIN connections c ON c.id = r.connection_id
            LEFT JOIN deals d ON d.id = r.deal_id LEFT JOIN users u ON u.id = d.owner_user_id
            WHERE {' AND '.join(where)} ORDER BY r.created_at DESC, r.local_id DESC LIMIT ? OFFSET ?""",
        (*params, limit, offset),
    ).fetchall()
    out = []
    for row in rows:
        item = dict(row)
        item["clients"] = _clients(json.loads(item.pop("offer")))
        out.append(item)
    return out


def waiting_to_send(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Deferred referrals still waiting for their stage, with names."""
    rows = conn.execute(
        """SELECT f.id, f.deal_id, f.created_at, d.title AS deal, c.name AS connection, s.name AS stage,
                  u.name AS actor
           FROM deferred_referrals f JOIN deals d ON d.id = f.deal_id
           LEFT JOIN connections c ON c.id = f.connection_id LEFT JOIN stages s ON s.id = f.stage_id
           LEFT JOIN users u ON u.id = f.actor_user_id
           WHERE f.state = 'waiting' ORDER BY f.created_at DESC LIMIT 200"""
    ).fetchall()
    return [dict(r) for r in rows]


@dataclass(frozen=True)
class ReferralPage:
    referral: Referral
    side: str  # sent / received
    connection: str
    #: The referral's deal here: ours (sent) or the one it was filed as (received).
    deal: Deal | None
    workflow: Workflow | None
    stage: str | None
    owner: str | None
    events: list[ReferralEvent]
    shared: list[Group]
    clients: list[str]
    #: Status updates the receiver may send now (received side).
    moves: tuple[str, ...]


def referral_page(conn: sqlite3.Connection, local_id: str) -> ReferralPage:
    referral = store.get_referral_local(conn, local_id)
    if referral is None:
        raise CrmError("not_found", "There is no referral here: it may be another organisation's.")
    connection = store.get_connection(conn, referral.connection_id)
    deal = workflow = stage = owner = None
    if referral.deal_id is not None:
        try:
            deal = crm.get_deal(conn, referral.deal_id)
        except CrmError:
            deal = None
    if deal is not None:
        workflow = crm.get_workflow(conn, deal.workflow_id)
        stage = next((s.name for s in workflow.stages if s.id == deal.stage_id), None)
        if deal.owner_user_id:
            owner = crm.get_user(conn, deal.owner_user_id).name
    events = store.list_events(conn, referral.side, referral.peer_node_id, referral.id)
    moves: tuple[str, ...] = ()
    if referral.side == "receiver":
        moves = tuple(s for s in ("accepted", "declined", "won", "lost") if _can(referral.state, s))
    return ReferralPage(referral, "sent" if referral.side == "sender" else "received",
                        connection.name if connection else "an organisation no longer connected",
                        deal, workflow, stage, owner, events, carried(referral.offer),
                        [client_name(c, f"Client {n}") for n, c in enumerate(referral.offer["contacts"], 1)],
                        moves)


def _can(state: str, status: str) -> bool:
    try:
        referral_next(Side.RECEIVER, ReferralState(state), ReferralState(status))
    except LocalProtocolError:
        return False
    return True
