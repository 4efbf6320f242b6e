"""Telling a client: by e-mail, SMS or both, as their broker's settings say for each
event, queued inside the causing transaction (``node.mail.queue``, ``node.portal.sms``)
and sent by the queues' loops, never inline.

An SMS needs the gateway set up, a mobile number on the contact, and one of the
organisation's SMS credits. With no credit left the SMS is not sent, the e-mail still is
(a passcode then goes by e-mail), and the broker is told: a deal note and an e-mail.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from node.base.config import Config
from node.crm import store as crm
from node.crm.models import NoteIn
from node.crm.parsing import parse
from node.mail import queue as mail
from node.portal import settings as portal
from node.portal import sms

SIGN_IN_PATH = "/client/sign-in"


@dataclass(frozen=True)
class Recipient:
    access_id: str
    deal_id: str
    name: str
    email: str
    phone: str | None
    broker_user_id: str


def recipient(conn: sqlite3.Connection, access_id: str) -> Recipient:
    row = conn.execute("SELECT a.id, a.deal_id, a.broker_user_id, c.first_name, c.last_name, c.email, c.phone"
                       " FROM client_access a JOIN contacts c ON c.id = a.contact_id WHERE a.id = ?",
                       (access_id,)).fetchone()
    name = " ".join(p for p in (row["first_name"], row["last_name"]) if p) or row["email"] or "client"
    return Recipient(row["id"], row["deal_id"], name, row["email"] or "", row["phone"], row["broker_user_id"])


def _broker_name(conn: sqlite3.Connection, user_id: str) -> str:
    row = conn.execute("SELECT name FROM users WHERE id = ?", (user_id,)).fetchone()
    return row["name"] if row else "Your broker"


def _sms_or_why(conn: sqlite3.Connection, config: Config, to: Recipient) -> str | None:
    """Take a credit for one SMS to ``to``: None if it may go, else why not."""
    if not sms.enabled(config):
        return "SMS is not set up on this node"
    if not to.phone:
        return "the contact has no mobile number"
    if not portal.use_credit(conn):
        return "no SMS credits left"
    return None


def _tell_broker(conn: sqlite3.Connection, config: Config, to: Recipient, what: str, fallback: str,
                 now: datetime) -> None:
    crm.add_note(conn, parse(NoteIn, {"deal_id": to.deal_id, "body": (
        f"Client portal: the text message to {to.name} ({what}) was not sent: no SMS credits left. {fallback}")}),
        now=now, kind="system")
    mail.enqueue_for_user(conn, config, to.broker_user_id, "client_sms_unsent",
                          {"client": to.name, "what": what, "fallback": fallback}, now)


def notify(conn: sqlite3.Connection, config: Config, access_id: str, event: str, now: datetime, *,
           sms_text: str, mail_kind: str, context: dict[str, Any]) -> str | None:
    """Tell the client of ``access_id`` about ``event`` by the broker's chosen channels.
    Returns a sentence for the broker when an SMS could not go (else None)."""
    to = recipient(conn, access_id)
    channel = portal.get_settings(conn, to.broker_user_id).notify.get(event, "email")
    if channel == "off":
        return None
    values = {"broker": _broker_name(conn, to.broker_user_id), "link": config.public_url + SIGN_IN_PATH,
              "external": True, **context}
    problem = None
    if channel in ("sms", "both"):
        problem = _sms_or_why(conn, config, to)
        if problem is None:
            sms.enqueue(conn, kind=event, to_number=to.phone or "", body=sms_text, secret=False, now=now)
        elif problem == "no SMS credits left":
            _tell_broker(conn, config, to, event.replace("_", " "), "The e-mail was sent.", now)
    if (channel in ("email", "both") or problem is not None) and to.email:
        mail.enqueue(conn, config, kind=mail_kind, to_addr=to.email, to_name=to.name, context=values, now=now)
    return problem


def send_passcode(conn: sqlite3.Connection, config: Config, access_id: str, code: str, expires_at: datetime,
                  now: datetime, *, invitation: bool) -> str | None:
    """The invitation (link by e-mail, passcode by SMS) or a new passcode. The passcode goes
    by SMS when the broker's invitation setting includes SMS and an SMS can go; else by
    e-mail. Returns why an SMS could not go, if it was meant to."""
    to = recipient(conn, access_id)
    channel = portal.get_settings(conn, to.broker_user_id).notify.get("invitation", "both")
    problem = None
    by_sms = False
    if channel in ("sms", "both"):
        problem = _sms_or_why(conn, config, to)
        by_sms = problem is None
        if by_sms:
            sms.enqueue(conn, kind="passcode", to_number=to.phone or "", secret=True, now=now,
                        body=f"{config.org_name}: your client portal passcode is {code}. It works once.")
        elif problem == "no SMS credits left":
            _tell_broker(conn, config, to, "the sign-in passcode", "The passcode went by e-mail instead.", now)
    values = {"broker": _broker_name(conn, to.broker_user_id), "link": config.public_url + SIGN_IN_PATH,
              "external": True, "passcode": "" if by_sms else code, "expires_at": expires_at}
    if invitation:
        mail.enqueue(conn, config, kind="client_invitation", to_addr=to.email, to_name=to.name, context=values,
                     now=now)
    elif not by_sms:
        mail.enqueue(conn, config, kind="client_passcode", to_addr=to.email, to_name=to.name, context=values,
                     now=now)
    return problem


def on_deal_moved(conn: sqlite3.Connection, ctx: Any, before: Any, after: Any) -> None:
    """A deal-moved hook (``node.crm.events``): each client of the deal hears of the new
    stage, as their broker's settings say."""
    if before.stage_id == after.stage_id:
        return
    rows = conn.execute("SELECT id FROM client_access WHERE deal_id = ? AND revoked_at IS NULL",
                        (after.id,)).fetchall()
    if not rows:
        return
    stage = crm.get_stage(conn, after.stage_id).name
    for row in rows:
        notify(conn, ctx.config, row["id"], "stage_change", ctx.now, mail_kind="client_stage_change",
               sms_text=f"{ctx.config.org_name}: your application is now at the stage {stage}. "
                        f"Details in your client portal.", context={"stage": stage})
    ctx.effects.mail = True
