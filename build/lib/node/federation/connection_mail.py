"""The mails about connecting two nodes, queued in the transaction that causes them:

- the **invitation**: an admin sends the referral URL and key to the other organisation's
  admin, with our fingerprint to compare. The key is never stored in clear (the
  invitations table keeps its hash), so it can only be mailed from the page that has
  just shown it: what that page sends back is checked against the stored hash before
  anything is queued. The queued mail itself is wiped once sent (``node.mail.kinds``);
- the **connection request**: another node asks a user here (by e-mail) to connect. That
  user gets an "Accept the invitation" link to the pending request in the console; when
  they cannot accept it themselves (a broker), or turned these mails off, the admins get
  it too.
"""

from __future__ import annotations

import hmac
import sqlite3
from datetime import datetime
from typing import Any

from node.federation.outbox import TxContext
from node.mail import queue
from node.storage import store
from node.storage.records import Connection, Invitation
from protocol import invitations as inv
from protocol.errors import LocalProtocolError, ProtocolError
from protocol.keys import fingerprint_of
from protocol.messages import Person
from protocol.models import parse_ts
from protocol.wire import ErrorCode

#: The direction of a connection (seen from us), as a mail says it to someone here.
DIRECTION_WORDS = {
    "send": "you would send them referrals",
    "receive": "they would send you referrals",
    "both": "you would send each other referrals",
}


def connection_link(ctx: TxContext, connection_id: str) -> str:
    return f"{ctx.config.public_url}/connections/{connection_id}"


def invitation_for(conn: sqlite3.Connection, *, me: str, now: datetime, invitation_id: str, referral_url: str,
                   referral_key: str) -> Invitation:
    """The open invitation ``invitation_id``, if ``referral_url`` and ``referral_key`` are
    its own (its id, our node id, the secret whose hash is stored); else raise. So the
    page that mails an invitation cannot be made to mail anything else in our name."""
    record = store.get_invitation(conn, invitation_id)
    if record is None:
        raise LocalProtocolError(ErrorCode.UNKNOWN_SUBJECT, f"no invitation {invitation_id}")
    if record.state != inv.InvitationState.OPEN or parse_ts(record.expires_at) <= now:
        state = record.state if record.state != inv.InvitationState.OPEN else "expired"
        raise LocalProtocolError(ErrorCode.INVALID_TRANSITION, f"this invitation is {state}: make a new one to send")
    mismatch = LocalProtocolError(ErrorCode.INVITATION_INVALID,
                                  "this referral URL and key are not those of this invitation")
    try:
        parsed = inv.parse_referral(referral_url, referral_key)
    except ProtocolError:
        raise mismatch from None
    stored = store.invitation_secret_hash(conn, invitation_id) or ""
    if (parsed.invitation_id != invitation_id or parsed.node_id != me
            or not hmac.compare_digest(inv.secret_hash(parsed.secret).encode(), stored.encode())):
        raise mismatch
    return record


def send_invitation(conn: sqlite3.Connection, ctx: TxContext, *, invitation_id: str, referral_url: str,
                    referral_key: str, to_name: str, to_email: str, sent_by: Person) -> Invitation:
    """Queue the invitation mail for an open invitation (see :func:`invitation_for`)."""
    record = invitation_for(conn, me=ctx.me, now=ctx.now, invitation_id=invitation_id,
                            referral_url=referral_url, referral_key=referral_key)
    queue.enqueue(conn, ctx.config, kind="invitation", to_addr=to_email, to_name=to_name, now=ctx.now,
                  context={"url": referral_url, "key": referral_key, "invited": record.name,
                           "fingerprint": fingerprint_of(ctx.me), "sent_by": sent_by.name,
                           "sent_by_email": sent_by.email, "expires_at": parse_ts(record.expires_at),
                           "external": True})
    ctx.effects.mail = True
    return record


def mail_connection_request(conn: sqlite3.Connection, ctx: TxContext, connection: Connection,
                            requested_by: Person) -> list[str]:
    """Tell the user a connection request names (and, when they cannot answer it, the
    admins) that it waits for an answer; the ids of the mails queued."""
    target = store.find_active_user(conn, connection.target_email or "")
    context: dict[str, Any] = {
        "peer": connection.name,
        "fingerprint": fingerprint_of(connection.peer_node_id),
        "requested_by": requested_by.name,
        "requested_by_email": requested_by.email,
        "message": connection.message,
        "direction": DIRECTION_WORDS[connection.direction],
        "link": connection_link(ctx, connection.id),
        "for_name": target["name"] if target else "",
        "for_email": target["email"] if target else "",
    }
    sent: list[str] = []
    if target is not None:
        mail_id = queue.enqueue_for_user(conn, ctx.config, target["id"], "connection_request",
                                         context | {"for_you": True, "can_answer": target["role"] == "admin"}, ctx.now)
        sent += [mail_id] if mail_id else []
    if target is None or target["role"] != "admin" or not sent:
        admins = [row["id"] for row in conn.execute("SELECT id FROM users WHERE role = 'admin' AND active = 1")]
        for admin_id in admins:
            if target is not None and admin_id == target["id"]:
                continue
            mail_id = queue.enqueue_for_user(conn, ctx.config, admin_id, "connection_request",
                                             context | {"for_you": False, "can_answer": True}, ctx.now)
            sent += [mail_id] if mail_id else []
    if sent:
        ctx.effects.mail = True
    return sent
