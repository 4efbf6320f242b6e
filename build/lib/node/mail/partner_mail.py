"""The partner portal's mails (issue 13), queued inside the transaction that causes them.

- **partner added**: the log-in e-mail, with a one-time set-password link to the portal.
  Sent only when the portal's "partner added" switch is on and the partner is assigned
  to at least one broker;
- **deal shared**: a broker gave the partner access to a deal (the "deal shared" switch);
- **new note, stage change, won or lost**: to each partner of the deal who turned that
  notification on, of those the organisation allows (``node.crm.portal``);
- **e-mail confirmation**: a link, to the new address, that makes it the partner's.

A mail names the deal by its title and links to the portal; it carries no client's
details and never a note's text (the partner reads it signed in).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

from node.base.config import Config
from node.crm import accounts, partners, portal
from node.crm.models import Deal
from node.mail import queue


def portal_link(config: Config, path: str) -> str:
    return f"{config.public_url}/partner{path}"


def invite(conn: sqlite3.Connection, config: Config, partner_id: str, now: datetime) -> bool:
    """Queue the log-in e-mail if the portal's switch is on and the partner has a broker;
    whether it was queued."""
    partner = partners.get_partner(conn, partner_id)
    if not portal.settings(conn).mail_partner_added or not partner.brokers:
        return False
    token = accounts.new_password_link(conn, partner_id, "set", now, config.password_link_ttl_s)
    queue.enqueue(conn, config, kind="partner_added", to_addr=partner.email, to_name=partner.name, now=now,
                  context={"link": portal_link(config, f"/set-password/{token}"), "partner": True,
                           "brokers": ", ".join(name for _, name in partner.brokers),
                           "expires_at": now + timedelta(seconds=config.password_link_ttl_s)})
    return True


def _to_partner(conn: sqlite3.Connection, config: Config, partner_id: str, kind: str, context: dict[str, Any],
                now: datetime) -> None:
    row = conn.execute("SELECT email, name FROM users WHERE id = ? AND active = 1 AND role = 'partner'",
                       (partner_id,)).fetchone()
    if row is not None:
        queue.enqueue(conn, config, kind=kind, to_addr=row["email"], to_name=row["name"], now=now,
                      context={"partner": True, **context})


def deal_shared(conn: sqlite3.Connection, config: Config, partner_id: str, deal: Deal, by: str,
                now: datetime) -> bool:
    if not portal.settings(conn).mail_deal_shared:
        return False
    _to_partner(conn, config, partner_id, "partner_deal_shared",
                {"deal_title": deal.title, "by": by, "link": portal_link(config, f"/deals/{deal.id}")}, now)
    return True


def _notify(conn: sqlite3.Connection, config: Config, deal: Deal, kind: str, context: dict[str, Any],
            now: datetime, *, skip: str | None = None) -> int:
    sent = 0
    for partner_id, _, _ in partners.deal_partners(conn, deal.id):
        if partner_id != skip and kind in portal.notifications_on(conn, partner_id):
            _to_partner(conn, config, partner_id, kind, {"deal_title": deal.title,
                        "link": portal_link(config, f"/deals/{deal.id}"), **context}, now)
            sent += 1
    return sent


def note_shared(conn: sqlite3.Connection, config: Config, deal: Deal, by: str, now: datetime) -> int:
    return _notify(conn, config, deal, "partner_note", {"by": by}, now)


def on_deal_moved(conn: sqlite3.Connection, ctx: Any, before: Deal, after: Deal) -> None:
    """A ``node.crm.events`` hook: tell the deal's partners (who chose to know)."""
    stages = {r["id"]: (r["name"], r["outcome"]) for r in conn.execute(
        "SELECT id, name, outcome FROM stages WHERE id IN (?, ?)", (before.stage_id, after.stage_id))}
    name, outcome = stages.get(after.stage_id, ("another stage", None))
    if outcome in ("won", "lost"):
        _notify(conn, ctx.config, after, "partner_outcome", {"outcome": outcome, "stage": name}, ctx.now)
    else:
        _notify(conn, ctx.config, after, "partner_stage",
                {"stage": name, "from_stage": stages.get(before.stage_id, ("another stage", None))[0]}, ctx.now)
    if partners.deal_partners(conn, after.id):
        ctx.effects.mail = True


def confirm_email(conn: sqlite3.Connection, config: Config, partner_id: str, new_email: str, name: str,
                  now: datetime) -> None:
    token = portal.new_email_change(conn, partner_id, new_email, now, config.password_link_ttl_s)
    queue.enqueue(conn, config, kind="partner_email_confirm", to_addr=new_email, to_name=name, now=now,
                  context={"link": portal_link(config, f"/confirm-email/{token}"), "partner": True,
                           "expires_at": now + timedelta(seconds=config.password_link_ttl_s)})
