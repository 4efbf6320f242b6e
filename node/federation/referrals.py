"""Referrals between connected nodes: sending an offer, receiving it, and the closed loop
of status updates that flows back to the referrer.

Synchronous domain functions run inside one database transaction.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from node.base.ids import new_id
from node.federation import referral_mail
from node.federation.outbox import TxContext, enqueue
from node.storage import store
from node.storage.records import OutboxItem, Referral, ReferralEvent
from protocol.envelope import OpenedEnvelope
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.messages import ReferralOffer, ReferralStatus
from protocol.offers import check_offer
from protocol.states import ReferralState, Side, referral_next
from protocol.wire import Disposition, ErrorCode, MessageType

#: How many status updates of one referral may wait for an earlier one.
MAX_HELD_UPDATES = 100

#: Hook run inside the transaction when an offer lands: it files the referral in the
#: local CRM and returns the new deal's id (see node.federation.landing).
Lander = Any


def send_offer(conn: sqlite3.Connection, ctx: TxContext, offer: ReferralOffer, *, deal_id: str | None = None) -> Referral:
    """Record and queue an offer. ``offer.connection_id`` must be an active connection
    that may send. Once queued, an offer cannot be recalled."""
    check_offer(offer)  # never send more than was shared, nor a client who did not consent
    connection = store.get_connection(conn, offer.connection_id)
    if connection is None:
        raise LocalProtocolError(ErrorCode.UNKNOWN_SUBJECT, f"no connection {offer.connection_id}")
    if connection.state != "active":
        raise LocalProtocolError(ErrorCode.NOT_CONNECTED, f"connection {connection.id} is {connection.state}")
    if not connection.may_send:
        raise LocalProtocolError(ErrorCode.DIRECTION_NOT_ALLOWED, f"connection {connection.id} only receives")
    peer = ctx.peer(conn, connection.peer_node_id)
    referral = Referral(
        local_id=new_id("ref"),
        side="sender",
        peer_node_id=peer.node_id,
        id=offer.referral_id,
        connection_id=connection.id,
        state=ReferralState.SENT.value,
        referral_type=offer.referral_type,
        deal_id=deal_id,
        envelope_id=None,
        offer=offer.wire(),
        last_seq=0,
        created_at=ctx.ts,
        updated_at=ctx.ts,
    )
    store.insert_referral(conn, referral)
    item = enqueue(conn, ctx, peer, MessageType.REFERRAL_OFFER, offer, subject=("referral", referral.local_id))
    store.update_referral(conn, referral.local_id, now=ctx.ts, envelope_id=item.envelope_id)
    return store.get_referral_local(conn, referral.local_id)  # type: ignore[return-value]


def on_offer(conn: sqlite3.Connection, ctx: TxContext, opened: OpenedEnvelope, lander: Lander = None) -> Disposition:
    offer: ReferralOffer = opened.message  # type: ignore[assignment]
    sender = opened.parsed.sender
    connection = store.connection_for_peer(conn, offer.connection_id, sender)
    if connection is None or connection.state not in ("active", "responded"):
        raise RemoteProtocolError(ErrorCode.NOT_CONNECTED, "no active connection with this sender")
    if connection.state == "responded":
        # The requester is active only after it saw our accept, so an offer from it is
        # as good as its confirmation (which is still on its way).
        from node.federation.handshake import _move
        from protocol.states import ConnEvent

        connection = _move(conn, ctx, connection, ConnEvent.RECEIVE_CONFIRM)
    if not connection.may_receive:
        raise RemoteProtocolError(ErrorCode.DIRECTION_NOT_ALLOWED, "this connection does not take referrals from you")
    check_offer(offer)
    if store.get_referral(conn, "receiver", sender, offer.referral_id) is not None:
        return Disposition.DUPLICATE  # the same referral in a re-sealed envelope
    deal_id = lander(conn, ctx, connection, offer) if lander is not None else None
    referral = store.insert_referral(
        conn,
        Referral.model_construct(  # every field is ours or an already validated offer's
            local_id=new_id("ref"),
            side="receiver",
            peer_node_id=sender,
            id=offer.referral_id,
            connection_id=connection.id,
            state=ReferralState.RECEIVED.value,
            referral_type=offer.referral_type,
            deal_id=deal_id,
            envelope_id=opened.parsed.envelope_id,
            offer=offer.wire(),
            last_seq=0,
            created_at=ctx.ts,
            updated_at=ctx.ts,
        ),
    )
    referral_mail.new_referral(conn, ctx, referral, connection.name)
    return Disposition.ACCEPTED


def report_status(conn: sqlite3.Connection, ctx: TxContext, local_id: str, status: str, *,
                  stage: str | None = None, reason: str | None = None) -> Referral:
    """The receiver moves a referral on; the update is queued back to the referrer."""
    referral = store.get_referral_local(conn, local_id)
    if referral is None or referral.side != "receiver":
        raise LocalProtocolError(ErrorCode.UNKNOWN_SUBJECT, f"no received referral {local_id}")
    new = referral_next(Side.RECEIVER, ReferralState(referral.state), ReferralState(status))
    seq = referral.last_seq + 1
    update = ReferralStatus(referral_id=referral.id, seq=seq, status=new.value, stage=stage,  # type: ignore[arg-type]
                            reason=reason, at=ctx.ts)
    store.insert_event(conn, ReferralEvent(side="receiver", peer_node_id=referral.peer_node_id,
                                           referral_id=referral.id, seq=seq, status=new.value, stage=stage,
                                           reason=reason, at=ctx.ts, applied=True))
    store.update_referral(conn, local_id, now=ctx.ts, state=new.value, last_seq=seq)
    enqueue(conn, ctx, ctx.peer(conn, referral.peer_node_id), MessageType.REFERRAL_STATUS, update,
            subject=("referral", local_id))
    return store.get_referral_local(conn, local_id)  # type: ignore[return-value]


def on_status(conn: sqlite3.Connection, ctx: TxContext, opened: OpenedEnvelope) -> Disposition:
    """Apply status updates in seq order, each at most once; hold any that come early."""
    update: ReferralStatus = opened.message  # type: ignore[assignment]
    sender = opened.parsed.sender
    referral = store.get_referral(conn, "sender", sender, update.referral_id)
    if referral is None:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_SUBJECT, "no referral with that id was sent to you")
    if update.seq <= referral.last_seq:
        return Disposition.DUPLICATE
    event = ReferralEvent(side="sender", peer_node_id=sender, referral_id=update.referral_id, seq=update.seq,
                          status=update.status, stage=update.stage, reason=update.reason, at=update.at,
                          applied=False)
    held = store.held_events(conn, "sender", sender, update.referral_id)
    if update.seq > referral.last_seq + 1 and len(held) >= MAX_HELD_UPDATES:
        raise RemoteProtocolError(ErrorCode.OUT_OF_ORDER, f"more than {MAX_HELD_UPDATES} updates wait for seq "
                                  f"{referral.last_seq + 1}; send that one first")
    if update.seq == referral.last_seq + 1:
        # The update that comes next must itself be a valid move; held ones are checked
        # as they come due, and the first invalid one stops the chain (it stays held).
        referral_next(Side.SENDER, ReferralState(referral.state), ReferralState(update.status))
    if not store.insert_event(conn, event):
        return Disposition.DUPLICATE
    state, last = ReferralState(referral.state), referral.last_seq
    applied: list[ReferralEvent] = []
    for held in store.held_events(conn, "sender", sender, update.referral_id):
        if held.seq != last + 1:
            break
        try:
            state = referral_next(Side.SENDER, state, ReferralState(held.status))
        except LocalProtocolError:
            break
        store.mark_event_applied(conn, "sender", sender, update.referral_id, held.seq)
        last = held.seq
        applied.append(held)
        if referral.deal_id is not None:
            _note_status(conn, ctx, referral, held)
    store.update_referral(conn, referral.local_id, now=ctx.ts, state=state.value, last_seq=last)
    referral_mail.status_update(conn, ctx, referral, applied)
    return Disposition.ACCEPTED


def _note_status(conn: sqlite3.Connection, ctx: TxContext, referral: Referral, event: ReferralEvent) -> None:
    """The referrer's deal records each step of the closed loop."""
    from node.crm import store as crm
    from node.crm.models import NoteIn, note_text

    connection = store.get_connection(conn, referral.connection_id)
    where = f" (stage {event.stage})" if event.stage else ""
    why = f": {event.reason}" if event.reason else ""
    name = connection.name if connection else referral.peer_node_id
    crm.add_note(conn, NoteIn(deal_id=referral.deal_id,
                                    body=note_text(f"{name} reports the referral {event.status.replace('-', ' ')}{where}{why}.")),
                 now=ctx.now, kind="referral")


def on_delivered(conn: sqlite3.Connection, ctx: TxContext, item: OutboxItem) -> None:
    if item.subject_kind == "referral" and item.type.startswith("referral-offer/"):
        referral = store.get_referral_local(conn, item.subject_id or "")
        if referral is not None and referral.state in (ReferralState.SENT, ReferralState.FAILED):
            store.update_referral(conn, referral.local_id, now=ctx.ts, state=ReferralState.DELIVERED.value)


def on_failed(conn: sqlite3.Connection, ctx: TxContext, item: OutboxItem) -> None:
    if item.subject_kind == "referral" and item.type.startswith("referral-offer/"):
        referral = store.get_referral_local(conn, item.subject_id or "")
        if referral is not None and referral.state == ReferralState.SENT:
            store.update_referral(conn, referral.local_id, now=ctx.ts, state=ReferralState.FAILED.value)
