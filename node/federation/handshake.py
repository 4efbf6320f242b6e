"""Connecting two nodes: invitations (Salestrekker's referral URL and key) and connection
requests to a named user (Blitz), confirmation, refusal, disconnection, key rotation.

These are synchronous domain functions that run inside one database transaction; the
messages they send are sealed into the outbox in that same transaction.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta
from typing import Any

from node.base.ids import new_id
from node.federation.connection_mail import mail_connection_request
from node.federation.outbox import TxContext, enqueue
from node.storage import store
from node.storage.records import Connection, Invitation
from protocol import invitations as inv
from protocol.direction import MIRROR, grant_for_invitation
from protocol.discovery import PeerKeys, stored_discovery, verify_discovery
from protocol.encoding import b64u_encode
from protocol.envelope import OpenedEnvelope
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.keys import SigningKey
from protocol.messages import (
    ConnectionAccept,
    ConnectionConfirm,
    ConnectionRefuse,
    ConnectionRequest,
    Disconnect,
    InvitationProof,
    KeyRotation,
    Person,
)
from protocol.models import format_ts, parse_ts
from protocol.states import ConnEvent, ConnState, Role, connection_next
from protocol.wire import Disposition, ErrorCode, MessageType


def remember_peer(conn: sqlite3.Connection, ctx: TxContext, keys: PeerKeys, discovery: bytes) -> None:
    base_url = keys.inbox_url.split("/refnode/", 1)[0]
    store.upsert_peer(
        conn,
        node_id=keys.node_id,
        name=keys.name,
        base_url=base_url,
        inbox_url=keys.inbox_url,
        discovery=discovery,
        signing_jwks={kid: k.jwk() for kid, k in keys.all_signing.items()},
        now=ctx.ts,
    )
    ctx.effects.peers[keys.node_id] = keys


def _move(conn: sqlite3.Connection, ctx: TxContext, c: Connection, event: ConnEvent, **fields: Any) -> Connection:
    state = connection_next(Role(c.role), ConnState(c.state), event)
    return store.update_connection(conn, c.id, now=ctx.ts, state=state.value, **fields)


# --- invitations (the inviting side) ---------------------------------------------------


def create_invitation(
    conn: sqlite3.Connection,
    ctx: TxContext,
    *,
    name: str,
    base_url: str,
    direction: str = "receive",
    settings: dict[str, Any] | None = None,
    ttl_s: int | None = None,
    created_by: str | None = None,
) -> tuple[Invitation, str, str]:
    """Make an invitation; return it with the referral URL and key to hand over.

    ``direction`` is seen from us: ``receive`` (the default, Salestrekker's "inbound")
    means the other organisation will send us referrals.
    """
    if direction not in MIRROR:
        raise LocalProtocolError(ErrorCode.MALFORMED, "direction is send, receive or both")
    invitation_id = new_id("inv")
    secret = os.urandom(32)
    document = inv.make_invitation(base_url=base_url, node_id=ctx.me, invitation_id=invitation_id, secret=secret)
    expires = ctx.now + timedelta(seconds=ttl_s or ctx.config.invitation_ttl_s)
    record = store.insert_invitation(
        conn,
        id=invitation_id,
        name=name,
        secret_hash=inv.secret_hash(b64u_encode(secret)),
        direction=direction,
        settings=settings or {},
        created_by=created_by,
        created_at=ctx.ts,
        expires_at=format_ts(expires),
    )
    return record, inv.referral_url(document), inv.referral_key(document)


def revoke_invitation(conn: sqlite3.Connection, ctx: TxContext, invitation_id: str) -> Invitation:
    record = store.get_invitation(conn, invitation_id)
    if record is None:
        raise LocalProtocolError(ErrorCode.UNKNOWN_SUBJECT, f"no invitation {invitation_id}")
    if record.state != inv.InvitationState.OPEN:
        raise LocalProtocolError(ErrorCode.INVALID_TRANSITION, f"invitation {invitation_id} is {record.state}")
    store.set_invitation_state(conn, invitation_id, inv.InvitationState.REVOKED)
    return store.get_invitation(conn, invitation_id)  # type: ignore[return-value]


# --- the requesting side ---------------------------------------------------------------


def start_connection(
    conn: sqlite3.Connection,
    ctx: TxContext,
    *,
    peer: PeerKeys,
    peer_discovery: bytes,
    our_discovery: bytes,
    requested_by: Person,
    invitation: inv.Invitation | None = None,
    target_email: str | None = None,
    direction: str = "send",
    message: str = "",
    name: str | None = None,
) -> Connection:
    """Record a connection we ask for and queue the connection-request."""
    if peer.node_id == ctx.me:
        raise LocalProtocolError(ErrorCode.MALFORMED, "a node cannot connect to itself")
    if (invitation is None) == (target_email is None):
        raise LocalProtocolError(ErrorCode.MALFORMED, "give either an invitation or a user's email")
    remember_peer(conn, ctx, peer, peer_discovery)
    connection_id = new_id("con")
    connection = Connection(
        id=connection_id,
        peer_node_id=peer.node_id,
        role="requester",
        state=connection_next(Role.REQUESTER, ConnState.START, ConnEvent.SEND_REQUEST).value,
        direction=direction,  # type: ignore[arg-type]
        name=name or peer.name,
        invitation_id=invitation.invitation_id if invitation else None,
        target_email=target_email,
        requested_by=requested_by.email,
        message=message,
        settings={},
        created_at=ctx.ts,
        updated_at=ctx.ts,
    )
    store.insert_connection(conn, connection)
    request = ConnectionRequest(
        connection_id=connection_id,
        requester_discovery=our_discovery.decode("utf-8"),
        invitation=InvitationProof(invitation_id=invitation.invitation_id, secret=invitation.secret)
        if invitation
        else None,
        target_email=target_email,
        requested_by=requested_by,
        direction=direction,  # type: ignore[arg-type]
        message=message,
    )
    enqueue(conn, ctx, peer, MessageType.CONNECTION_REQUEST, request, subject=("connection", connection_id))
    return connection


# --- the responding side ---------------------------------------------------------------


def on_request(conn: sqlite3.Connection, ctx: TxContext, opened: OpenedEnvelope) -> Disposition:
    request: ConnectionRequest = opened.message  # type: ignore[assignment]
    sender = opened.parsed.sender
    # The requester's discovery document is verified whoever sends it (a known peer's
    # too): only a verified, not older, key set is ever stored. An introduction's was
    # verified as the envelope was opened: its keys verified the envelope.
    discovery_raw = request.requester_discovery.encode("utf-8")
    if opened.sender_discovery is not None:
        doc, keys = opened.sender_discovery, opened.sender_keys
    else:
        doc, keys = verify_discovery(discovery_raw, expected_node_id=sender)
    current = store.get_peer(conn, sender)
    if current is not None and doc.issued_at < stored_discovery(current.discovery, node_id=sender)[0].issued_at:
        keys, discovery_raw = ctx.peer(conn, sender), current.discovery
    existing = store.get_connection(conn, request.connection_id)
    if existing is not None:
        if existing.peer_node_id == sender and existing.role == "responder":
            return Disposition.DUPLICATE
        raise RemoteProtocolError(ErrorCode.MALFORMED, "that connection id is taken; choose another")
    if request.invitation is not None:
        invitation = store.get_invitation(conn, request.invitation.invitation_id)
        stored_hash = store.invitation_secret_hash(conn, request.invitation.invitation_id)
        inv.check_redemption(  # an unknown id is answered as a wrong key is
            stored_hash=stored_hash if invitation is not None else None,
            state=inv.InvitationState(invitation.state) if invitation is not None else None,
            expires_at=parse_ts(invitation.expires_at) if invitation is not None else None,
            presented_secret=request.invitation.secret,
            now=ctx.now,
        )
        assert invitation is not None
        # The requester's wish may narrow the invitation's direction, never widen it.
        direction = grant_for_invitation(invitation.direction, request.direction)
        settings, name = invitation.settings, invitation.name
    else:
        assert request.target_email is not None
        if store.find_active_user(conn, request.target_email) is None:
            raise RemoteProtocolError(ErrorCode.UNKNOWN_USER, "that email is not an active user here")
        direction, settings, name = MIRROR[request.direction], {}, opened.sender_keys.name
    remember_peer(conn, ctx, keys, discovery_raw)
    connection = Connection(
        id=request.connection_id,
        peer_node_id=sender,
        role="responder",
        state=connection_next(Role.RESPONDER, ConnState.START, ConnEvent.RECEIVE_REQUEST).value,
        direction=direction,  # type: ignore[arg-type]
        name=name,
        invitation_id=request.invitation.invitation_id if request.invitation else None,
        target_email=request.target_email,
        requested_by=request.requested_by.email,
        message=request.message,
        settings=settings,
        created_at=ctx.ts,
        updated_at=ctx.ts,
    )
    store.insert_connection(conn, connection)
    if request.invitation is not None:
        store.set_invitation_state(conn, request.invitation.invitation_id, inv.InvitationState.USED,
                                   used_at=ctx.ts, connection_id=connection.id)
        # A valid invitation is the inviting admin's consent in advance: accept now.
        accept_request(conn, ctx, connection.id, accepted_by=None, reply_to=opened.parsed.envelope_id)
    else:  # the user it names (and admins) learn it waits for an answer: a mail, queued here
        mail_connection_request(conn, ctx, connection, request.requested_by)
    return Disposition.ACCEPTED


def accept_request(conn: sqlite3.Connection, ctx: TxContext, connection_id: str, *,
                   accepted_by: Person | None, reply_to: str | None = None) -> Connection:
    c = _own_connection(conn, connection_id)
    c = _move(conn, ctx, c, ConnEvent.ACCEPT)
    peer = ctx.peer(conn, c.peer_node_id)
    accept = ConnectionAccept(
        connection_id=c.id,
        direction=MIRROR[c.direction],  # type: ignore[arg-type]
        accepted_by=accepted_by or Person(name=ctx.config.org_name, email=f"admin@{ctx.me[:8].lower()}.invalid"),
        name=ctx.config.org_name,
    )
    enqueue(conn, ctx, peer, MessageType.CONNECTION_ACCEPT, accept, subject=("connection", c.id), reply_to=reply_to)
    return c


def decline_request(conn: sqlite3.Connection, ctx: TxContext, connection_id: str, *, message: str = "") -> Connection:
    c = _own_connection(conn, connection_id)
    c = _move(conn, ctx, c, ConnEvent.REFUSE, closing_note=message)
    refuse = ConnectionRefuse(connection_id=c.id, reason="declined", message=message)
    enqueue(conn, ctx, ctx.peer(conn, c.peer_node_id), MessageType.CONNECTION_REFUSE, refuse,
            subject=("connection", c.id))
    return c


def on_accept(conn: sqlite3.Connection, ctx: TxContext, opened: OpenedEnvelope) -> Disposition:
    accept: ConnectionAccept = opened.message  # type: ignore[assignment]
    c = _peer_connection(conn, accept.connection_id, opened.parsed.sender)
    if c.state == ConnState.ACTIVE:
        return Disposition.DUPLICATE
    c = _move(conn, ctx, c, ConnEvent.RECEIVE_ACCEPT, direction=accept.direction, name=accept.name)
    enqueue(conn, ctx, opened.sender_keys, MessageType.CONNECTION_CONFIRM, ConnectionConfirm(connection_id=c.id),
            subject=("connection", c.id), reply_to=opened.parsed.envelope_id)
    return Disposition.ACCEPTED


def _apply_peer_event(conn: sqlite3.Connection, ctx: TxContext, opened: OpenedEnvelope,
                      event: ConnEvent, after: ConnState, **fields: Any) -> Disposition:
    """A message that moves one of the sender's connections to ``after``; once there, a
    repeat is a duplicate."""
    connection_id: str = opened.message.connection_id  # type: ignore[attr-defined]
    c = _peer_connection(conn, connection_id, opened.parsed.sender)
    if c.state == after:
        return Disposition.DUPLICATE
    _move(conn, ctx, c, event, **fields)
    return Disposition.ACCEPTED


def on_refuse(conn: sqlite3.Connection, ctx: TxContext, opened: OpenedEnvelope) -> Disposition:
    refuse: ConnectionRefuse = opened.message  # type: ignore[assignment]
    note = refuse.message if refuse.reason == "declined" else refusal_note(refuse.reason, refuse.message)
    return _apply_peer_event(conn, ctx, opened, ConnEvent.RECEIVE_REFUSE, ConnState.REFUSED, closing_note=note)


def on_confirm(conn: sqlite3.Connection, ctx: TxContext, opened: OpenedEnvelope) -> Disposition:
    return _apply_peer_event(conn, ctx, opened, ConnEvent.RECEIVE_CONFIRM, ConnState.ACTIVE)


# --- after the handshake ---------------------------------------------------------------


def disconnect(conn: sqlite3.Connection, ctx: TxContext, connection_id: str, *, reason: str = "") -> Connection:
    c = _own_connection(conn, connection_id)
    c = _move(conn, ctx, c, ConnEvent.DISCONNECT, closing_note=reason)
    enqueue(conn, ctx, ctx.peer(conn, c.peer_node_id), MessageType.DISCONNECT,
            Disconnect(connection_id=c.id, reason=reason), subject=("connection", c.id))
    return c


def on_disconnect(conn: sqlite3.Connection, ctx: TxContext, opened: OpenedEnvelope) -> Disposition:
    reason: str = opened.message.reason  # type: ignore[attr-defined]
    return _apply_peer_event(conn, ctx, opened, ConnEvent.RECEIVE_DISCONNECT, ConnState.DISCONNECTED,
                             closing_note=reason)


def on_key_rotation(conn: sqlite3.Connection, ctx: TxContext, opened: OpenedEnvelope) -> Disposition:
    message: KeyRotation = opened.message  # type: ignore[assignment]
    raw = message.discovery.encode("utf-8")
    doc, keys = verify_discovery(raw, expected_node_id=opened.parsed.sender)
    current = store.get_peer(conn, opened.parsed.sender)
    if current is not None:
        known, _ = stored_discovery(current.discovery, node_id=opened.parsed.sender)
        if doc.issued_at < known.issued_at:
            return Disposition.DUPLICATE  # an older key set: never roll back
    remember_peer(conn, ctx, keys, raw)
    return Disposition.ACCEPTED


def announce_rotation(conn: sqlite3.Connection, ctx: TxContext, our_discovery: bytes,
                      previous_key: SigningKey) -> int:
    """Queue a key-rotation to every peer we have a live connection with, signed with the
    previous key (the one they know). Delivery is in order per peer, so everything queued
    before it, signed with the old key, arrives before it."""
    sent: set[str] = set()
    for c in store.list_connections(conn):
        if c.state in (ConnState.ACTIVE, ConnState.RESPONDED, ConnState.REQUESTED) and c.peer_node_id not in sent:
            enqueue(conn, ctx, ctx.peer(conn, c.peer_node_id), MessageType.KEY_ROTATION,
                    KeyRotation(discovery=our_discovery.decode("utf-8")), signing_key=previous_key)
            sent.add(c.peer_node_id)
    return len(sent)


def expire_stale(conn: sqlite3.Connection, ctx: TxContext) -> int:
    """Expire open invitations past their time. Returns how many."""
    count = 0
    for record in store.list_invitations(conn):
        if record.state == inv.InvitationState.OPEN and parse_ts(record.expires_at) <= ctx.now:
            store.set_invitation_state(conn, record.id, "expired")
            count += 1
    return count


# --- lookups ---------------------------------------------------------------------------


def _own_connection(conn: sqlite3.Connection, connection_id: str) -> Connection:
    c = store.get_connection(conn, connection_id)
    if c is None:
        raise LocalProtocolError(ErrorCode.UNKNOWN_SUBJECT, f"no connection {connection_id}")
    return c


def _peer_connection(conn: sqlite3.Connection, connection_id: str, sender: str) -> Connection:
    c = store.connection_for_peer(conn, connection_id, sender)
    if c is None:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_SUBJECT, "no such connection with this sender")
    return c


#: What a refused connection-request means for the person who sent it, by the code the
#: other node answered with: kept as the connection's closing note.
REQUEST_REFUSALS: dict[str, str] = {
    ErrorCode.UNKNOWN_USER: "no active user there has the email the request named; ask their admin which to use",
    ErrorCode.INVITATION_INVALID: "their node does not recognise this referral key for this referral URL; "
                                  "check both with their admin",
    ErrorCode.INVITATION_USED: "this invitation was already used; ask their admin for a new one",
    ErrorCode.INVITATION_REVOKED: "their admin revoked this invitation; ask them for a new one",
    ErrorCode.INVITATION_EXPIRED: "this invitation has expired; ask their admin for a new one",
    ErrorCode.DIRECTION_NOT_ALLOWED: "the invitation does not allow the direction you asked for; "
                                     "ask again for the direction it allows, or ask their admin",
}


def refusal_note(code: str, message: str = "") -> str:
    """A refusal by code, in words for the requester's admin: the peer's own message when
    it gave one, else what the code means (:data:`REQUEST_REFUSALS`)."""
    words = message or REQUEST_REFUSALS.get(code, "")
    return f"{code}: {words}" if words else code


def on_send_failed(conn: sqlite3.Connection, ctx: TxContext, item: Any) -> None:
    """A connection-request the peer refused outright (bad invitation, unknown user), or
    that could not be delivered before its deadline, ends the attempt for good: the
    requester's connection is refused, and its closing note says why (the code the peer
    answered with, or the last delivery error). Start again with a new request."""
    if item.subject_kind == "connection" and item.type.startswith("connection-request/"):
        c = store.get_connection(conn, item.subject_id or "")
        if c is not None and c.state == ConnState.REQUESTED and c.role == Role.REQUESTER:
            row = store.get_outbox(conn, item.seq)
            error = (row.last_error if row is not None else None) or "not delivered"
            note = refusal_note(error) if error in REQUEST_REFUSALS else f"their node refused the request ({error})"
            if error.endswith(store.DEADLINE_PASSED):
                note = f"the request could not be delivered before its deadline ({error.removesuffix(store.DEADLINE_PASSED)})"
            _move(conn, ctx, c, ConnEvent.RECEIVE_REFUSE, closing_note=note)
