"""The suite's inbox: what the target sends back (its connection-accept, its referral,
its status updates, its key rotation) arrives here, is opened with every check of
docs/protocol.md section 8.5, and is answered with a signed receipt, as any node would.
Whatever does not open is kept as a problem, which a check then reports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from conformance.peer import Peer
from conformance.target import STATUS, Target
from protocol.discovery import verify_discovery
from protocol.envelope import OpenedEnvelope, open_envelope
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.messages import KeyRotation
from protocol.models import parse_ts
from protocol.receipts import make_receipt
from protocol.wire import (
    DISCOVERY_PATH,
    INBOX_PATH,
    MEDIA_TYPE_JOSE_JSON,
    Disposition,
    ErrorCode,
    MessageType,
)


@dataclass(frozen=True)
class Arrival:
    opened: OpenedEnvelope
    receipt: bytes

    @property
    def type(self) -> MessageType:
        return self.opened.parsed.message_type


class Inbox:
    """Serves ``peer``'s discovery document and inbox on ``host:port``."""

    def __init__(self, peer: Peer, target: Target) -> None:
        self.peer = peer
        self.target = target
        self.arrivals: list[Arrival] = []
        self.problems: list[str] = []
        self._seen: dict[str, tuple[str, bytes]] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> int:
        app = web.Application(client_max_size=2 * 1024 * 1024)
        app.router.add_get(DISCOVERY_PATH, self._discovery)
        app.router.add_post(INBOX_PATH, self._inbox)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.Response(body=self.peer.discovery, content_type=MEDIA_TYPE_JOSE_JSON)

    async def _inbox(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.content_type != MEDIA_TYPE_JOSE_JSON:
            self.problems.append(f"the target posted Content-Type {request.content_type}")
        now = datetime.now(UTC)
        keys = self.target.keys
        try:
            opened = open_envelope(
                body, me=self.peer.node_id, now=now,
                peer_keys=lambda node_id: keys if keys is not None and node_id == keys.node_id else None,
                decryption_keys={self.peer.encryption.kid: self.peer.encryption},
            )
        except ProtocolError as exc:
            self.problems.append(f"an envelope from the target does not open: {exc.code.value}: {exc.message}")
            return _error(exc)
        parsed = opened.parsed
        seen = self._seen.get(parsed.envelope_id)
        if seen is not None:
            if seen[0] == parsed.sha256:
                return web.Response(body=seen[1], content_type=MEDIA_TYPE_JOSE_JSON)
            self.problems.append(f"the target reused envelope id {parsed.envelope_id} for other bytes")
            return _error(RemoteProtocolError(ErrorCode.REPLAYED, "envelope id already used"))
        if parsed.message_type is MessageType.KEY_ROTATION:
            self._rotate(opened)
        receipt = make_receipt(envelope_id=parsed.envelope_id, envelope_sha256=parsed.sha256,
                               recipient=self.peer.node_id, sender=parsed.sender,
                               disposition=Disposition.ACCEPTED, now=now, signing_key=self.peer.signing)
        self._seen[parsed.envelope_id] = (parsed.sha256, receipt)
        async with self._changed:
            self.arrivals.append(Arrival(opened, receipt))
            self._changed.notify_all()
        return web.Response(body=receipt, content_type=MEDIA_TYPE_JOSE_JSON)

    def _rotate(self, opened: OpenedEnvelope) -> None:
        message: KeyRotation = opened.message  # type: ignore[assignment]
        try:
            doc, keys = verify_discovery(message.discovery.encode("utf-8"), expected_node_id=opened.parsed.sender)
        except ProtocolError as exc:
            self.problems.append(f"the target's key-rotation document does not verify: {exc.code.value}")
            return
        current = self.target.doc
        if current is not None and parse_ts(doc.issued_at) < parse_ts(current.issued_at):
            return
        old = self.target.keys
        self.target.doc = doc
        self.target.keys = keys.with_history(old.all_signing.values()) if old is not None else keys

    def arrivals_matching(self, wanted: Callable[[Arrival], bool]) -> Arrival | None:
        return next((a for a in self.arrivals if wanted(a)), None)

    async def wait_for(self, wanted: Callable[[Arrival], bool], timeout_s: float) -> Arrival | None:
        """The first arrival ``wanted`` accepts, waiting up to ``timeout_s`` for it."""
        async def found() -> Arrival:
            async with self._changed:
                while True:
                    hit = next((a for a in self.arrivals if wanted(a)), None)
                    if hit is not None:
                        return hit
                    await self._changed.wait()
        try:
            return await asyncio.wait_for(found(), timeout_s)
        except TimeoutError:
            return None


def _error(exc: ProtocolError) -> web.Response:
    return web.json_response({"error": {"code": exc.code.value, "message": exc.message}},
                             status=STATUS.get(exc.code.value, 400))
