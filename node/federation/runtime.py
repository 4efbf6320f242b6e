"""The running node: its identity, the peers it knows, the inbox pipeline, and the
delivery queues. ``node.http.app`` wires it to HTTP; the CLI and tests call it directly.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiohttp

from node.base.clock import Clock, SystemClock
from node.base.config import Config
from node.base.keystore import KeyStore
from node.base.logs import failure_fields, get_logger
from node.base.metrics import NodeMetrics
from node.base.ratelimit import FailureLimiter, retry_after
from node.crm import events
from node.crm.indexing import SearchIndexer
from node.crm.store import history
from node.federation import enterprise, handshake, own_discovery, referrals, referring
from node.federation.delivery import Delivery, read_limited
from node.federation.landing import land_offer
from node.federation.outbox import Effects, TxContext
from node.mail import partner_mail
from node.mail.sender import MailSender
from node.portal import notify as portal_notify
from node.portal.sms import SmsSender
from node.storage import store
from node.storage.db import Database
from node.storage.disk import unavailable_storage
from node.storage.records import InboxItem
from protocol import replay
from protocol.discovery import PeerKeys, stored_discovery, verify_discovery
from protocol.envelope import OpenedEnvelope, open_envelope, parse_envelope
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.keys import VerifyKey
from protocol.models import parse_ts
from protocol.receipts import make_receipt
from protocol.suites import SuiteId
from protocol.wire import Disposition, ErrorCode, MessageType


class Fronts(Protocol):
    """The inbox fronts, as the node sees them while they run (``node.http.fronts`` sets
    ``Node.fronts``): it tells them what a transaction changed, and reports on them."""

    def announce(self, what: str, ids: tuple[str, ...]) -> None: ...

    def status(self) -> dict[str, int]: ...

log = get_logger("node.inbox")
T = TypeVar("T")

Handler = Callable[[sqlite3.Connection, TxContext, OpenedEnvelope], Disposition]

HANDLERS: dict[MessageType, Handler] = {
    MessageType.CONNECTION_REQUEST: handshake.on_request,
    MessageType.CONNECTION_ACCEPT: handshake.on_accept,
    MessageType.CONNECTION_REFUSE: handshake.on_refuse,
    MessageType.CONNECTION_CONFIRM: handshake.on_confirm,
    MessageType.DISCONNECT: handshake.on_disconnect,
    MessageType.KEY_ROTATION: handshake.on_key_rotation,
    MessageType.REFERRAL_OFFER: lambda conn, ctx, opened: referrals.on_offer(conn, ctx, opened, land_offer),
    MessageType.REFERRAL_STATUS: referrals.on_status,
    MessageType.ENTERPRISE_PARTNER: enterprise.on_enterprise_partner,
}


@dataclass(frozen=True)
class InboxResult:
    """What the inbox answers: a receipt (accepted or duplicate), or an error; or, when
    the node cannot store anything now (its disk is full), nothing decided: come back in
    ``unavailable_s`` seconds."""

    receipt: bytes | None
    error: ProtocolError | None = None
    unavailable_s: float | None = None


#: When the disk is full, senders are asked to come back after this long.
STORAGE_RETRY_AFTER_S = 30.0

#: TEST ONLY: inbox checks a test may turn off, to show that the conformance suite
#: catches a node without them (tests/node/test_conformance_suite.py).
TEST_BREAKS = frozenset({"recipient", "replay", "expiry"})


def inbox_breaks(env: dict[str, str] | os._Environ[str]) -> frozenset[str]:
    """TEST ONLY. The checks named in REFNODE_TEST_BREAK (comma-separated), honoured only
    when REFNODE_TEST_MODE is 1; otherwise, as always in production, none. Only this
    process's inbox honours them (inbox fronts, with inbox_workers > 0, do not)."""
    if env.get("REFNODE_TEST_MODE") != "1":
        return frozenset()
    return frozenset(env.get("REFNODE_TEST_BREAK", "").split(",")) & TEST_BREAKS


class Node:
    def __init__(self, config: Config, keys: KeyStore, db: Database, *, clock: Clock | None = None) -> None:
        self.config = config
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self.metrics = NodeMetrics()
        #: Wrong invitation keys, by client address, requesting node and invitation id.
        self.invitation_guesses = FailureLimiter("invitation keys", limit=config.invitation_failures_per_hour,
                                                 window_s=3600.0, clock=self.clock)
        self.use_keys(keys)
        #: TEST ONLY (see inbox_breaks): empty unless a test turned inbox checks off.
        self.breaks = inbox_breaks(os.environ)
        if self.breaks:
            log.warning("TEST MODE: inbox checks turned off", checks=sorted(self.breaks))
        self.peers: dict[str, PeerKeys] = {}
        self.http: aiohttp.ClientSession | None = None
        self.delivery = Delivery(self)
        self.mail = MailSender(config, db, self.clock)
        self.sms = SmsSender(config, db, self.clock)
        #: Indexes for search the contacts and deals written meanwhile (node.crm.indexing).
        self.search = SearchIndexer(db, config.outbox_poll_interval_s)
        #: The inbox fronts, when they run (see node.http.fronts).
        self.fronts: Fronts | None = None
        #: Run inside the transaction of every deal move (see ``node.crm.events``).
        self.on_deal_moved: list[events.DealMovedHook] = [history.record_move, referring.on_deal_moved,
                                                          partner_mail.on_deal_moved, portal_notify.on_deal_moved]
        self.refresh_discovery()

    # -- identity ------------------------------------------------------------------

    def use_keys(self, keys: KeyStore) -> None:
        self.keys = keys
        self.me = keys.node_id
        self.suites: tuple[SuiteId, ...] = keys.suites

    @property
    def base_url(self) -> str:
        return self.config.public_url

    def refresh_discovery(self) -> None:
        """Our discovery document for our keys and settings as they are now: the one signed
        before if it was made from the same (``node.federation.own_discovery``), else one
        issued now, made and signed when first asked for (an idle node builds none of its
        models and reads no private key)."""
        self._discovery_at = self.clock.now()
        self._discovery: bytes | None = own_discovery.stored(self.config, self.keys)

    @property
    def discovery(self) -> bytes:
        if self._discovery is None:
            self._discovery = own_discovery.sign(self.config, self.keys, self._discovery_at)
        return self._discovery

    async def start(self) -> None:
        """Load the peers we know, and resume delivery of whatever is due."""
        self.peers.update(await self.db.read(load_peers))
        await self.delivery.start()
        await self.mail.start()
        await self.sms.start()
        await self.search.start()

    async def stop(self) -> None:
        await self.search.stop()
        await self.sms.stop()
        await self.mail.stop()
        await self.delivery.stop()

    # -- transactions --------------------------------------------------------------

    def context(self, effects: Effects | None = None) -> TxContext:
        return TxContext(
            me=self.me,
            keys=self.keys,
            config=self.config,
            now=self.clock.now(),
            suites=self.suites,
            effects=effects or Effects(),
            discovery=self.discovery,
            peers=self.peers,
        )

    async def transact(self, fn: Callable[[sqlite3.Connection, TxContext], T]) -> T:
        """Run a domain function in a (group-committed) transaction, then apply its effects."""
        ctx = self.context()
        result = await self.db.write(lambda conn: fn(conn, ctx))
        self.apply_effects(ctx.effects)
        return result

    def apply_effects(self, effects: Effects) -> None:
        self.peers.update(effects.peers)
        if self.fronts is not None:
            if effects.peers:
                self.fronts.announce("peers", tuple(effects.peers))
            if effects.own_keys:
                self.fronts.announce("keys", ())
        for node_id in effects.poke:
            self.delivery.poke(node_id)
        if effects.mail:
            self.mail.kick()
            self.sms.kick()

    async def rotate_signing_key(self) -> int:
        """A new signing key, announced to every connected peer; how many were told."""

        def rotate(conn: sqlite3.Connection, ctx: TxContext) -> int:
            # Switch keys and queue the announcements in one step of the write batch: writes
            # before it seal with the old key, writes after it with the new one, so each
            # peer's in-order queue carries the announcement exactly between the two.
            previous = self.keys.signing
            self.keys.rotate_signing()
            self.refresh_discovery()
            ctx.effects.own_keys = True
            return handshake.announce_rotation(conn, ctx, self.discovery, previous)

        return await self.transact(rotate)

    # -- the inbox -----------------------------------------------------------------

    async def receive(self, body: bytes, *, client: str | None = None) -> InboxResult:
        """Verify, decrypt, de-duplicate, apply and commit one envelope; sign the receipt.
        ``client`` is the sender's address, which wrong invitation keys are counted by."""
        now = self.clock.now()
        try:
            parsed = parse_envelope(body, max_bytes=self.config.max_envelope_bytes)
        except ProtocolError as exc:
            log.info("envelope refused", code=exc.code.value)
            self.metrics.inbox("unknown", exc.code.value, receipt=False)
            return InboxResult(None, exc)
        me = self.me
        if self.breaks:  # TEST ONLY: a node that skips the recipient or expiry check
            me = parsed.header.rn_to if "recipient" in self.breaks else me
            now = min(now, parse_ts(parsed.header.rn_iat)) if "expiry" in self.breaks else now
        try:
            opened = open_envelope(
                parsed, me=me, now=now, peer_keys=self.peers.get, decryption_keys=self.keys.decryption_keys
            )
        except ProtocolError as exc:
            # The very bytes we already accepted get the stored receipt: they were fully
            # verified then, and may be signed with a key the sender has retired since, or
            # be older than the window by now.
            seen = await self.db.read(lambda conn: store.get_inbox(conn, parsed.sender, parsed.envelope_id))
            if seen is not None and seen.sha256 == parsed.sha256:
                self.metrics.inbox(parsed.message_type.value, None, receipt=True, duplicate=True)
                return InboxResult(seen.receipt)
            receipt = None
            if exc.sender_verified:
                receipt = self._receipt(parsed, Disposition.REJECTED, exc)
            log.info("envelope refused", code=exc.code.value, verified=exc.sender_verified)
            self.metrics.inbox(parsed.message_type.value, exc.code.value, receipt=receipt is not None)
            return InboxResult(receipt, exc)
        return await self.accept(opened, client=client)

    async def accept(self, opened: OpenedEnvelope, *, client: str | None = None) -> InboxResult:
        """The second half of :meth:`receive`, for an envelope already opened and verified
        (here, or by an inbox front process, see ``node.http.fronts``): de-duplicate, apply,
        commit, then answer with the receipt."""
        parsed = opened.parsed
        message_type = parsed.message_type.value
        bound = log.bind(peer=parsed.sender, envelope_id=parsed.envelope_id, type=message_type)
        guesser = _redeeming(opened, client)
        if guesser is not None and (wait_s := self.invitation_guesses.charge(**guesser)):
            # Before the invitation is looked at, so that past the limit nothing is learnt;
            # no receipt, as nothing was decided about the envelope.
            bound.info("envelope refused", code=ErrorCode.RATE_LIMITED.value)
            self.metrics.inbox(message_type, ErrorCode.RATE_LIMITED.value, receipt=False)
            return InboxResult(None, RemoteProtocolError(
                ErrorCode.RATE_LIMITED, f"too many wrong invitation keys; try again in {retry_after(wait_s)} s",
                retry_after_s=wait_s))
        ctx = self.context()
        handler = HANDLERS[parsed.message_type]
        # The receipt if the envelope is accepted, signed before the transaction: a
        # database shared with inbox fronts is then locked for less time (see node.storage.db).
        accepted_receipt = self._receipt(parsed, Disposition.ACCEPTED, None, now=ctx.now)

        def apply(conn: sqlite3.Connection) -> tuple[bytes, bool, bool]:
            # The sender is up: whatever backoff we keep for it ends now.
            backoff_reset = store.clear_peer_retry(conn, parsed.sender)
            existing = store.get_inbox(conn, parsed.sender, parsed.envelope_id)
            broken = existing is not None and "replay" in self.breaks  # TEST ONLY: a replay taken as new
            existing = None if broken else existing
            seen = replay.classify(existing.sha256 if existing else None, parsed.sha256)
            if existing is not None and seen is replay.Seen.DUPLICATE:
                return existing.receipt, True, backoff_reset
            disposition = handler(conn, ctx, opened)
            if disposition is Disposition.ACCEPTED:
                receipt = accepted_receipt
            else:
                receipt = self._receipt(parsed, disposition, None, now=ctx.now)
            if not broken:
                store.insert_inbox(
                    conn,
                    InboxItem.model_construct(  # from the verified envelope and our receipt
                        sender=parsed.sender,
                        envelope_id=parsed.envelope_id,
                        sha256=parsed.sha256,
                        type=parsed.header.rn_type,
                        body=parsed.raw,
                        inner=opened.inner_jws,
                        receipt=receipt,
                        received_at=ctx.ts,
                    ),
                )
            return receipt, disposition is Disposition.DUPLICATE, backoff_reset

        wrong_key = False
        try:
            receipt, duplicate, backoff_reset = await self.db.write(apply)
        except ProtocolError as exc:
            wrong_key = exc.code is ErrorCode.INVITATION_INVALID
            bound.info("envelope rejected", code=exc.code.value)
            self.metrics.inbox(message_type, exc.code.value, receipt=True)
            return InboxResult(self._receipt(parsed, Disposition.REJECTED, exc), exc)
        except Exception as exc:
            if (why := unavailable_storage(exc)) is not None:
                # Nothing was stored and nothing is decided: the sender keeps the envelope
                # and comes back, and we take it then (a full disk, or one that refused a sync).
                bound.warning("envelope not stored: storage unavailable", reason=why)
                self.metrics.inbox(message_type, "unavailable", receipt=False)
                return InboxResult(None, None, unavailable_s=STORAGE_RETRY_AFTER_S)
            bound.error("envelope failed", **failure_fields(exc))
            self.metrics.inbox(message_type, ErrorCode.INTERNAL.value, receipt=False)
            return InboxResult(None, RemoteProtocolError(ErrorCode.INTERNAL, "the node could not store this"))
        finally:
            if guesser is not None and not wrong_key:
                self.invitation_guesses.refund(**guesser)  # only a wrong key counts
        if backoff_reset:
            ctx.effects.poke.add(parsed.sender)  # its queue here may hold what it missed
        self.apply_effects(ctx.effects)
        bound.info("envelope duplicate" if duplicate else "envelope accepted")
        self.metrics.inbox(message_type, None, receipt=True, duplicate=duplicate)
        return InboxResult(receipt)

    def _receipt(self, parsed: Any, disposition: Disposition, error: ProtocolError | None, *,
                 now: Any = None) -> bytes:
        return make_receipt(
            envelope_id=parsed.envelope_id,
            envelope_sha256=parsed.sha256,
            recipient=self.me,
            sender=parsed.sender,
            disposition=disposition,
            now=now or self.clock.now(),
            signing_key=self.keys.signing,
            error=error,
        )

    # -- outbound HTTP -------------------------------------------------------------

    async def fetch_discovery(self, base_url: str, *, expected_node_id: str | None) -> tuple[bytes, PeerKeys]:
        """GET a peer's discovery document and verify it (against a pinned id if given)."""
        from protocol.wire import DISCOVERY_PATH

        assert self.http is not None
        url = base_url.rstrip("/") + DISCOVERY_PATH
        timeout = aiohttp.ClientTimeout(total=self.config.request_timeout_s)
        try:
            async with self.http.get(url, timeout=timeout) as response:
                raw = await read_limited(response, 65536 + 1)
                if response.status != 200:
                    raise RemoteProtocolError(ErrorCode.UNKNOWN_SENDER, f"{url} answered HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RemoteProtocolError(ErrorCode.UNKNOWN_SENDER, f"cannot reach {url}: {exc}") from None
        _, keys = verify_discovery(raw, expected_node_id=expected_node_id)
        return raw, keys


def _redeeming(opened: OpenedEnvelope, client: str | None) -> dict[str, str | None] | None:
    """For a connection-request that redeems an invitation, the keys its wrong guesses
    count against (``invitation_invalid``: the other refusals need the right key); for
    anything else None."""
    proof = getattr(opened.message, "invitation", None)
    if opened.parsed.message_type is not MessageType.CONNECTION_REQUEST or proof is None:
        return None
    return {"client": client, "requester": opened.parsed.sender, "invitation": proof.invitation_id}


def load_peers(conn: sqlite3.Connection, node_ids: Iterable[str] | None = None) -> dict[str, PeerKeys]:
    """The pinned keys of the peers we know (or of ``node_ids``), from their stored
    discovery documents plus the keys they retired. A document was verified before it was
    stored, so it is read without checking its signature again: a node that has peers
    starts without cryptography (issue 16, idle memory)."""
    wanted = None if node_ids is None else set(node_ids)
    peers: dict[str, PeerKeys] = {}
    for peer in store.list_peers(conn):
        if wanted is not None and peer.node_id not in wanted:
            continue
        try:
            _, keys = stored_discovery(peer.discovery, node_id=peer.node_id)
        except ProtocolError as exc:  # never stored unverified; but never refuse to start
            log.error("stored peer keys are unreadable; skipped", peer=peer.node_id, code=exc.code.value)
            continue
        history = store.peer_key_history(conn, peer.node_id)
        peers[peer.node_id] = keys.with_history(VerifyKey.from_jwk(j) for j in history)
    return peers


def run_sync(coro: Any) -> Any:  # pragma: no cover - convenience for scripts
    return asyncio.run(coro)
