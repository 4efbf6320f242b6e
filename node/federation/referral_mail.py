"""The two mails a referral causes, queued in the transaction that causes them:

- **new referral**, to the owner of the deal an inbound offer was filed as;
- **status update**, to the referring agent (the local user who referred) when the
  receiver's updates are applied here.

A mail carries the minimum the recipient needs to act: the deal's title, the referral
type, the other organisation, and a link to the referral's page; never contact details,
documents or the peer's free text (a decline's reason is on the page, after sign-in).
An inbox front may run this in its own process: the mail is in the queue, and the node's
mail sender finds it when it next polls.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from node.crm import store as crm
from node.federation.outbox import TxContext
from node.mail.queue import enqueue_for_user
from node.storage import store
from node.storage.records import Referral, ReferralEvent


def _link(ctx: TxContext, referral: Referral) -> str:
    return f"{ctx.config.public_url}/referrals/{referral.local_id}"


def _connection_name(conn: sqlite3.Connection, referral: Referral) -> str:
    connection = store.get_connection(conn, referral.connection_id)
    return connection.name if connection else "a connected organisation"


def new_referral(conn: sqlite3.Connection, ctx: TxContext, referral: Referral, from_org: str) -> None:
    """Tell the owner of the deal a received referral was filed as; ``from_org`` is the
    name of its connection."""
    if referral.deal_id is None:
        return
    row = conn.execute("SELECT owner_user_id, title FROM deals WHERE id = ?", (referral.deal_id,)).fetchone()
    if row is None or row["owner_user_id"] is None:
        return
    context = {"from_org": from_org, "referral_type": referral.referral_type,
               "deal_title": row["title"], "agent": referral.offer["referring_agent"]["name"],
               "link": _link(ctx, referral)}
    if enqueue_for_user(conn, ctx.config, row["owner_user_id"], "new_referral", context, ctx.now):
        ctx.effects.mail = True


def referring_user(conn: sqlite3.Connection, offer: dict[str, Any]) -> str | None:
    """The local user behind a referral we sent: its referring agent, else whoever
    recorded the consent (an agent from outside this node has no account here)."""
    for person in (offer.get("referring_agent"), offer.get("consent", {}).get("recorded_by")):
        if person and (user := crm.find_user_by_email(conn, person["email"])) is not None and user.active:
            return user.id
    return None


def status_update(conn: sqlite3.Connection, ctx: TxContext, referral: Referral,
                  applied: list[ReferralEvent]) -> None:
    """Tell the referring agent what the receiver's updates (applied just now) say."""
    if not applied:
        return
    user_id = referring_user(conn, referral.offer)
    if user_id is None:
        return
    title = referral.offer["deal"]["title"]
    if referral.deal_id is not None:
        row = conn.execute("SELECT title FROM deals WHERE id = ?", (referral.deal_id,)).fetchone()
        title = row["title"] if row else title
    context = {"from_org": _connection_name(conn, referral), "referral_type": referral.referral_type,
               "deal_title": title, "link": _link(ctx, referral),
               "updates": [{"status": e.status.replace("-", " "), "stage": e.stage} for e in applied],
               "status": applied[-1].status.replace("-", " ")}
    if enqueue_for_user(conn, ctx.config, user_id, "status_update", context, ctx.now):
        ctx.effects.mail = True
