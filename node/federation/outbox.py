"""Writing envelopes to the outbox. Anything that must be delivered is sealed and stored
here, inside the caller's transaction, before any attempt to send it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from node.base.config import Config
from node.base.errors import ApiError
from node.base.ids import new_id
from node.base.keystore import KeyStore
from node.storage import store
from node.storage.records import OutboxItem
from protocol.discovery import PeerKeys, verify_discovery
from protocol.envelope import digest, parse_envelope, seal_envelope
from protocol.errors import LocalProtocolError
from protocol.keys import SigningKey
from protocol.messages import MESSAGE_MODELS
from protocol.models import WireModel, format_ts, parse_ts
from protocol.suites import SuiteId, choose_suite
from protocol.wire import MAX_ENVELOPE_AGE_S, ErrorCode, MessageType, versioned


@dataclass
class Effects:
    """What a transaction changed that the running node must learn after it commits."""

    poke: set[str] = field(default_factory=set)  # peers with new outbox items
    peers: dict[str, PeerKeys] = field(default_factory=dict)  # peer key sets to (re)cache
    own_keys: bool = False  # our own keys changed (a rotation)
    mail: bool = False  # mail was queued: wake the mail sender


@dataclass
class TxContext:
    """Everything a synchronous domain function needs inside a transaction."""

    me: str
    keys: KeyStore
    config: Config
    now: datetime
    suites: tuple[SuiteId, ...]
    effects: Effects
    #: Our signed discovery document, as peers see it.
    discovery: bytes
    #: The running node's cache of verified peer keys (read-only here).
    peers: Mapping[str, PeerKeys]

    @cached_property
    def ts(self) -> str:
        """``now`` as stored text; one value for the whole transaction."""
        return format_ts(self.now)

    def peer(self, conn: sqlite3.Connection, node_id: str) -> PeerKeys:
        """A peer's keys: as changed in this transaction, else cached, else stored."""
        keys = self.effects.peers.get(node_id) or self.peers.get(node_id)
        if keys is not None:
            return keys
        peer = store.get_peer(conn, node_id)
        if peer is None:
            raise LocalProtocolError(ErrorCode.UNKNOWN_SENDER, f"no peer {node_id}")
        return verify_discovery(peer.discovery, expected_node_id=node_id)[1]


def enqueue(
    conn: sqlite3.Connection,
    ctx: TxContext,
    peer: PeerKeys,
    message_type: MessageType,
    message: WireModel,
    *,
    reply_to: str | None = None,
    subject: tuple[str, str] | None = None,
    signing_key: SigningKey | None = None,
) -> OutboxItem:
    """Seal ``message`` to ``peer`` and store it for delivery. ``signing_key`` overrides our
    current signing key (a key rotation is announced with the key the peer knows)."""
    body, envelope_id = _seal(ctx, peer, message_type, message, reply_to, signing_key or ctx.keys.signing)
    item = store.insert_outbox(
        conn,
        envelope_id=envelope_id,
        peer_node_id=peer.node_id,
        inbox_url=peer.inbox_url,
        type=versioned(message_type),
        body=body,
        sha256=digest(body),
        created_at=ctx.ts,
        deadline_at=ctx.now.timestamp() + ctx.config.delivery_deadline_s,
        message=json.dumps(message.wire(), sort_keys=True),
        reply_to=reply_to,
        subject_kind=subject[0] if subject else None,
        subject_id=subject[1] if subject else None,
    )
    ctx.effects.poke.add(peer.node_id)
    return item


def reseal(conn: sqlite3.Connection, ctx: TxContext, item: OutboxItem, peer: PeerKeys) -> tuple[bytes, str]:
    """A fresh envelope (new id, new time) for a failed item an admin retries after the
    acceptance window: the receiver's handlers are idempotent on the message's own ids."""
    text, reply_to = store.outbox_message(conn, item.seq)
    message_type = MessageType(item.type.split("/", 1)[0])
    message = MESSAGE_MODELS[message_type].model_validate(json.loads(text))
    return _seal(ctx, peer, message_type, message, reply_to, ctx.keys.signing)


def check_retry(conn: sqlite3.Connection, ctx: TxContext, item: OutboxItem, *, resealed: bool) -> None:
    """Refuse (409) to retry a failed item that can never be delivered: one the peer
    refused with a protocol error code (the same message would be refused again), or one
    signed with a key we have retired since, once the peer has learnt of the rotation (it
    no longer accepts that key). Items that failed at their deadline, or that the peer
    answered with no code of ours (a proxy's 404, say), may be retried. ``resealed``: the
    retry seals a fresh envelope with the current key."""
    what = item.type.split("/", 1)[0]
    error = item.last_error or ""
    if not error.endswith(store.DEADLINE_PASSED) and error in {c.value for c in ErrorCode}:
        again = ("start over with a new invitation or request" if what == MessageType.CONNECTION_REQUEST
                 else "send a new one if it still matters")
        raise ApiError(409, "refused_by_peer",
                       f"outbox item {item.seq} ({what}) was refused by the peer ({error}); the same message "
                       f"would be refused again, so it cannot be retried: {again}", field="seq")
    if resealed or what == MessageType.KEY_ROTATION:  # an announcement is signed with the old key on purpose
        return
    kid = parse_envelope(item.body, max_bytes=len(item.body)).header.kid
    if kid != ctx.keys.signing_kid and store.delivered_after(conn, item.peer_node_id, item.seq,
                                                             MessageType.KEY_ROTATION.value + "/"):
        raise ApiError(409, "retired_key",
                       f"outbox item {item.seq} ({what}) is signed with key {kid}, which this node retired when "
                       "it rotated its keys, and the peer has learnt of the rotation: it would refuse the item. "
                       "Send a new one if it still matters", field="seq")


def retry_failed(conn: sqlite3.Connection, ctx: TxContext, seq: int) -> OutboxItem:
    """Queue a failed item again (an admin's retry, from the API or the console): with a
    fresh deadline, re-sealed as a new envelope when the stored one would be too old to
    be accepted before the deadline; the peer's backoff ends and its queue is woken."""
    item = store.get_outbox(conn, seq)
    if item is None:
        raise LocalProtocolError(ErrorCode.UNKNOWN_SUBJECT, f"no outbox item {seq}")
    if item.state != "failed":
        raise LocalProtocolError(ErrorCode.INVALID_TRANSITION, f"item {seq} is {item.state}, not failed")
    deadline = ctx.now.timestamp() + ctx.config.delivery_deadline_s
    age = ctx.now.timestamp() - parse_ts(item.created_at).timestamp()
    resealed = age > MAX_ENVELOPE_AGE_S - ctx.config.delivery_deadline_s
    check_retry(conn, ctx, item, resealed=resealed)
    if resealed:
        body, envelope_id = reseal(conn, ctx, item, ctx.peer(conn, item.peer_node_id))
        store.requeue(conn, seq, deadline_at=deadline, body=body, envelope_id=envelope_id, sha256=digest(body))
    else:
        store.requeue(conn, seq, deadline_at=deadline)
    store.set_peer_retry(conn, item.peer_node_id, 0, 0.0)
    ctx.effects.poke.add(item.peer_node_id)
    return store.get_outbox(conn, seq)  # type: ignore[return-value]


def _seal(ctx: TxContext, peer: PeerKeys, message_type: MessageType, message: WireModel,
          reply_to: str | None, signing_key: SigningKey) -> tuple[bytes, str]:
    """A new envelope for ``message``, sealed with the best suite the peer offers."""
    suite, key = choose_suite(ctx.suites, list(peer.encryption))
    envelope_id = new_id("env")
    body = seal_envelope(
        message,
        message_type=message_type,
        envelope_id=envelope_id,
        sender=ctx.me,
        recipient=peer.node_id,
        now=ctx.now,
        signing_key=signing_key,
        suite=suite,
        recipient_key=key,
        reply_to=reply_to,
    )
    if len(body) > peer.max_envelope_bytes:
        raise LocalProtocolError(
            ErrorCode.TOO_LARGE, f"the envelope is {len(body)} bytes; {peer.name} takes at most {peer.max_envelope_bytes}"
        )
    return body, envelope_id
