"""Enterprises (issue 13, docs/protocol.md Appendix D): a connection marked parent → child,
and the parent adding a partner to a child with a signed ``enterprise-partner`` message.

- each admin marks their own end of an active connection: the peer is our ``child`` or
  our ``parent`` (:func:`set_relation`); nothing is negotiated;
- the parent sends the partner's profile (name, e-mail, phone), never a password
  (:func:`send_partner`), written to the outbox in the transaction that decides it;
- the child (:func:`on_enterprise_partner`) takes it only from a connection it marked as
  its parent, creates the partner account (or finds it), assigns it to the owner of its
  partner default workflow, and sends its own log-in e-mail per its own portal settings.
  The partner's deals and activity then stay on the child's node.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from node.crm import partners, portal
from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.parsing import parse
from node.federation.outbox import TxContext, enqueue
from node.mail import partner_mail
from node.storage import store
from node.storage.records import Connection
from protocol.envelope import OpenedEnvelope
from protocol.errors import RemoteProtocolError
from protocol.messages import EnterprisePartner, Person
from protocol.wire import Disposition, ErrorCode, MessageType

RELATIONS = ("parent", "child")


def relation_of(conn: sqlite3.Connection, connection_id: str) -> str | None:
    row = conn.execute("SELECT relation FROM connection_relations WHERE connection_id = ?",
                       (connection_id,)).fetchone()
    return None if row is None else str(row[0])


def relations(conn: sqlite3.Connection) -> dict[str, str]:
    return {r[0]: r[1] for r in conn.execute("SELECT connection_id, relation FROM connection_relations")}


def set_relation(conn: sqlite3.Connection, ctx: TxContext, connection_id: str, relation: str | None,
                 by: str) -> Connection:
    """Mark what the peer of an active connection is to us (``None``: neither)."""
    c = store.get_connection(conn, connection_id)
    if c is None or c.state != "active":
        raise CrmError("not_found", "There is no such active connection here.")
    if relation not in (None, *RELATIONS):
        raise CrmError("invalid", "Choose parent, child or neither.", "relation")
    conn.execute("DELETE FROM connection_relations WHERE connection_id = ?", (connection_id,))
    if relation is not None:
        conn.execute("INSERT INTO connection_relations (connection_id, relation, set_at, set_by) VALUES (?, ?, ?, ?)",
                     (connection_id, relation, ctx.ts, by))
    return c


def send_partner(conn: sqlite3.Connection, ctx: TxContext, connection_id: str, *, partner_ref: str, name: str,
                 email: str, phone: str, partner_id: str | None, admin: Person) -> str:
    """Queue the partner's profile to our child on ``connection_id``; the envelope's id."""
    c = store.get_connection(conn, connection_id)
    if c is None or c.state != "active" or relation_of(conn, connection_id) != "child":
        raise CrmError("not_found", "There is no such child organisation here.")
    message = EnterprisePartner(connection_id=c.id, partner_ref=partner_ref, name=name, email=email, phone=phone,
                                added_by=admin, sent_at=ctx.ts)
    item = enqueue(conn, ctx, ctx.peer(conn, c.peer_node_id), MessageType.ENTERPRISE_PARTNER, message,
                   subject=("connection", c.id))
    conn.execute("INSERT INTO enterprise_partner_sends (id, connection_id, partner_id, partner_ref, name, email,"
                 " sent_at, sent_by, envelope_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (item.envelope_id, c.id, partner_id, partner_ref, name, email, ctx.ts,
                  _user_id(conn, admin.email), item.envelope_id))
    return item.envelope_id


def _user_id(conn: sqlite3.Connection, email: str) -> str | None:
    user = crm.find_user_by_email(conn, email)
    return None if user is None else user.id


@dataclass(frozen=True)
class Sent:
    name: str
    email: str
    sent_at: str
    state: str  # the outbox's: pending, delivered, failed


def sent_to(conn: sqlite3.Connection, connection_id: str) -> list[Sent]:
    """The partners we added to a child, newest first, with how their delivery stands."""
    rows = conn.execute(
        """SELECT s.name, s.email, s.sent_at, coalesce(o.state, 'pending') FROM enterprise_partner_sends s
           LEFT JOIN outbox o ON o.envelope_id = s.envelope_id WHERE s.connection_id = ?
           ORDER BY s.sent_at DESC, s.id DESC""", (connection_id,))
    return [Sent(r[0], r[1], r[2], r[3]) for r in rows]


def on_enterprise_partner(conn: sqlite3.Connection, ctx: TxContext, opened: OpenedEnvelope) -> Disposition:
    """The child's side: Appendix D's steps, in order."""
    message: EnterprisePartner = opened.message  # type: ignore[assignment]
    c = store.connection_for_peer(conn, message.connection_id, opened.parsed.sender)
    if c is None or c.state != "active":
        raise RemoteProtocolError(ErrorCode.NOT_CONNECTED, "no active connection with this sender")
    if relation_of(conn, c.id) != "parent":
        raise RemoteProtocolError(ErrorCode.DIRECTION_NOT_ALLOWED,
                                  "this node has not marked your organisation as its parent")
    if partners.find_partner(conn, message.email) is not None:
        return Disposition.ACCEPTED  # one of our partners already: nothing new
    settings = portal.settings(conn)
    brokers = []
    if settings.default_workflow_id is not None:
        brokers = [crm.get_workflow(conn, settings.default_workflow_id).owner_user_id]
    try:
        data = parse(partners.PartnerIn, {"name": message.name, "email": message.email, "phone": message.phone})
        partner = partners.create_partner(conn, data, brokers, added_by=None, now=ctx.now)
    except CrmError as exc:
        if exc.code == "conflict":
            raise RemoteProtocolError(ErrorCode.INVALID_TRANSITION, "this address belongs to a user of this "
                                      "organisation, not a partner") from None
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"enterprise-partner: {exc.message}") from None
    partners.record(conn, partner.id, f"Added by the parent organisation {c.name}", ctx.now,
                    detail=f"by {message.added_by.name}")
    if partner_mail.invite(conn, ctx.config, partner.id, ctx.now):
        ctx.effects.mail = True
    return Disposition.ACCEPTED
