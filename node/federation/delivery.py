"""Delivery: one queue per peer, one request in flight, in order, retried with backoff.

The database is the truth: an envelope is due when its outbox row is ``pending`` and the
peer's ``retry_not_before`` has passed. Workers are asyncio tasks, one per peer with
pending items; the sweep (every ``outbox_poll_interval_s``, a task of its own) and every
enqueue only wake them, so a restart loses nothing. A retry re-sends the identical stored
bytes.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING

import aiohttp

from node.base.backoff import retry_delay_s
from node.base.errors import is_retryable
from node.base.logs import failure_fields, get_logger
from node.base.waits import woken
from node.federation import delivery_health, handshake, referrals
from node.storage import due, store
from node.storage.disk import unavailable_storage
from node.storage.records import OutboxItem
from protocol.encoding import loads_strict
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.models import format_ts
from protocol.receipts import verify_receipt
from protocol.wire import MEDIA_TYPE_JOSE_JSON, Disposition, ErrorCode

if TYPE_CHECKING:
    from node.federation.runtime import Node

log = get_logger("node.delivery")
KNOWN_CODES = frozenset(code.value for code in ErrorCode)


class Delivery:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = False
        self._random = random.SystemRandom()

    async def start(self) -> None:
        self._stopping = False
        await self.tick()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        """:meth:`tick` every ``outbox_poll_interval_s``, one at a time; one that fails is
        logged and the next runs as usual."""
        while not self._stopping:
            await asyncio.sleep(self.node.config.outbox_poll_interval_s)
            try:
                await self.tick()
            except Exception as exc:
                log.error("delivery sweep failed", **failure_fields(exc))

    async def stop(self) -> None:
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        for event in self._wake.values():
            event.set()
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()

    async def tick(self) -> None:
        """The sweep: expire what is overdue, and wake a worker for every peer the database
        says has something due. A read first: a write transaction (and its sync) only when
        something is overdue, so an idle node's sweep writes nothing."""
        node = self.node

        def sweep(conn):  # type: ignore[no-untyped-def]
            ctx = node.context()
            overdue = due.fail_overdue(conn, ctx.now.timestamp())
            for item in overdue:
                _on_failed(conn, ctx, item)
            handshake.expire_stale(conn, ctx)
            told = delivery_health.tell_overdue(conn, node.config, ctx.now)
            return overdue, due.peers_with_pending(conn), told

        now = node.clock.now()

        def anything_due(conn):  # type: ignore[no-untyped-def]
            return (due.sweep_due(conn, now.timestamp(), format_ts(now))
                    or delivery_health.episode_to_tell(conn, now))

        try:
            if await node.db.read(anything_due):
                overdue, pending, told = await node.db.write(sweep)
            else:
                overdue, pending, told = [], await node.db.read(due.peers_with_pending), False
        except Exception as exc:
            if (why := unavailable_storage(exc)) is None:
                raise
            log.warning("delivery sweep skipped: storage unavailable", reason=why)  # the next tick tries again
            return
        if told:
            node.mail.kick()
        for item in overdue:
            log.warning("delivery deadline passed", peer=item.peer_node_id, envelope_id=item.envelope_id,
                        type=item.type)
        for peer in pending:
            self.poke(peer)

    def poke(self, peer: str) -> None:
        """Something may be due for ``peer``: make sure its worker runs and look again."""
        if self._stopping:
            return
        event = self._wake.setdefault(peer, asyncio.Event())
        event.set()
        task = self._workers.get(peer)
        if task is None or task.done():
            self._workers[peer] = asyncio.get_running_loop().create_task(self._run(peer))

    async def _run(self, peer: str) -> None:
        node = self.node
        event = self._wake.setdefault(peer, asyncio.Event())
        while not self._stopping:
            event.clear()
            item, attempts, not_before = await node.db.read(lambda conn: due.next_due(conn, peer))
            if item is None:
                # Nothing due. Wait briefly for more before this worker ends.
                if not await woken(event, 5.0):
                    return
                continue
            wait_s = not_before - node.clock.now().timestamp()
            if wait_s > 0:
                await woken(event, min(wait_s, node.config.outbox_poll_interval_s * 30))
                continue
            await self._attempt(item, attempts)

    async def _attempt(self, item: OutboxItem, peer_attempts: int) -> None:
        node = self.node
        bound = log.bind(peer=item.peer_node_id, envelope_id=item.envelope_id, type=item.type)
        assert node.http is not None
        timeout = aiohttp.ClientTimeout(total=node.config.request_timeout_s)
        retry_after: float | None = None
        metrics = node.metrics
        metrics.delivery_attempts.labels(item.peer_node_id).inc()
        started = time.perf_counter()

        def failed_because(reason: str, outcome: str = "retry") -> None:
            metrics.delivery_failures.labels(item.peer_node_id, reason).inc()
            metrics.delivery_seconds.labels(outcome).observe(time.perf_counter() - started)

        try:
            async with node.http.post(
                item.inbox_url, data=item.body, headers={"Content-Type": MEDIA_TYPE_JOSE_JSON}, timeout=timeout
            ) as response:
                payload = await read_limited(response, 262_144)
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            failed_because("network")
            await self._retry_later(item, peer_attempts, f"network: {type(exc).__name__}", None)
            return
        if status == 200:
            try:
                keys = node.peers[item.peer_node_id]
                receipt = verify_receipt(payload, keys=keys, envelope_id=item.envelope_id,
                                         envelope_sha256=item.sha256, sender=node.me)
                if receipt.disposition is Disposition.REJECTED:  # only ever sent with an error status
                    raise RemoteProtocolError(ErrorCode.MALFORMED, "a 200 answer with a rejected receipt")
            except (ProtocolError, KeyError) as exc:
                failed_because("bad_receipt")
                await self._retry_later(item, peer_attempts, f"bad receipt: {exc}", None)
                return
            metrics.delivery_seconds.labels("delivered").observe(time.perf_counter() - started)

            def delivered(conn):  # type: ignore[no-untyped-def]
                ctx = node.context()
                store.clear_peer_retry(conn, item.peer_node_id)
                delivery_health.note_delivered(conn, item.peer_node_id)
                if store.mark_delivered(conn, item, receipt=payload, now=ctx.ts):
                    referrals.on_delivered(conn, ctx, item)

            await node.db.write(delivered)
            bound.info("delivered")
            return
        if is_retryable(status):
            failed_because(f"http_{status}")
            await self._retry_later(item, peer_attempts, f"HTTP {status}", retry_after)
            return
        code = _error_code(payload) or f"HTTP {status}"
        # A code we know, never whatever a peer makes up: labels stay few.
        failed_because(code if code in KNOWN_CODES else f"http_{status}", "refused")

        def failed(conn):  # type: ignore[no-untyped-def]
            ctx = node.context()
            if store.mark_attempt_failed(conn, item, error=code, final=True):
                _on_failed(conn, ctx, item)

        await node.db.write(failed)
        bound.warning("delivery refused", code=code, status=status)

    async def _retry_later(self, item: OutboxItem, peer_attempts: int, error: str, retry_after: float | None) -> None:
        node = self.node
        attempt = peer_attempts + 1
        delay = retry_delay_s(attempt, base_s=node.config.retry_base_delay_s, cap_s=node.config.retry_max_delay_s,
                              draw=self._random.random(), retry_after_s=retry_after)
        not_before = node.clock.now().timestamp() + delay

        def record(conn):  # type: ignore[no-untyped-def]
            store.mark_attempt_failed(conn, item, error=error, final=False)
            store.set_peer_retry(conn, item.peer_node_id, attempt, not_before)
            # failing for over an hour: the admins are told, once per episode
            return delivery_health.note_failed_attempt(conn, node.config, item.peer_node_id, node.clock.now())

        if await node.db.write(record):
            node.mail.kick()
        log.info("delivery will retry", peer=item.peer_node_id, envelope_id=item.envelope_id, type=item.type,
                 error=error, attempt=attempt, delay_s=round(delay, 1))


def _on_failed(conn, ctx, item: OutboxItem) -> None:  # type: ignore[no-untyped-def]
    referrals.on_failed(conn, ctx, item)
    handshake.on_send_failed(conn, ctx, item)


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, up to ``limit`` bytes (``content.read(n)`` may return only what has
    arrived so far). A longer body is cut at ``limit``; it will not verify."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(65536):
        body += chunk
        if len(body) >= limit:
            return bytes(body[:limit])
    return bytes(body)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(int(value)))
    except ValueError:
        return None  # an HTTP-date: rare between nodes; the backoff applies


def _error_code(payload: bytes) -> str | None:
    """The peer's error code, if its answer has one (whatever else the answer holds)."""
    try:
        code = loads_strict(payload, what="the answer")["error"]["code"]
    except (RemoteProtocolError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


