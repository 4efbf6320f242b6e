"""One inbox front process (see ``node.http.fronts``), started by ``refnode serve`` when
``inbox_workers`` > 0; never run by hand.

    python -m node.http.front [--config PATH] --fd N --http SOCKET --link SOCKET
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from node.base.config import Config, load_config
from node.base.errors import protocol_error_response
from node.base.keystore import KeyStore
from node.base.logs import configure_logging, failure_fields, get_logger
from node.base.metrics import status_class
from node.base.repeats import quiet_loop_errors
from node.federation.outbox import Effects
from node.federation.runtime import Node, load_peers
from node.http.app import client_max_size, error_middleware, passphrase_from_env
from node.http.bodies import read_body
from node.http.clients import FRONT_CLIENT_HEADER, client_address
from node.http.connections import CappedServer, connection_cap, serve_socket, server_settings
from node.http.fronts import FAST_TYPES, Link
from node.http.inbox import inbox_response, read_envelope
from node.http.serve import settle_gc
from node.storage.db import Database
from node.storage.sqlite import connect
from protocol.envelope import open_envelope, parse_envelope
from protocol.errors import ProtocolError
from protocol.wire import INBOX_PATH

log = get_logger("node.front")

#: Headers that describe one HTTP connection, not the message: never passed through.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "transfer-encoding", "upgrade", "host", "content-length"})


class FrontNode(Node):
    """The node as a front runs it: its inbox for the fast types, and nothing else (no
    delivery, no scheduler). What a transaction changed that the node process must act
    on, new outbox items and peers' keys, is told to it over the link once committed."""

    def __init__(self, front: Front, config: Config, keys: KeyStore, db: Database) -> None:
        super().__init__(config, keys, db)
        self.front = front

    def apply_effects(self, effects: Effects) -> None:
        self.peers.update(effects.peers)
        if (effects.poke or effects.peers) and self.front.link is not None:
            self.front.link.send("effects", tuple(effects.poke), tuple(effects.peers))


class Front:
    def __init__(self, config: Config, http_socket: Path, link_socket: Path) -> None:
        self.config = config
        self.http_socket = http_socket
        self.link_socket = link_socket
        self.passphrase = passphrase_from_env(config)
        #: Read-only, for peers' keys (loaded on the loop, between envelopes).
        self.db = connect(config.database_path)
        self.db.execute("PRAGMA query_only=ON")
        self.link: Link | None = None
        #: Set when the node process has told us all we must know before serving.
        self.ready = asyncio.Event()
        self.upstream: aiohttp.ClientSession | None = None
        self.database = Database(config.database_path, shared=True)
        self.database.on_failure.append(self._disk_failed)
        #: Our keys, peers' keys and the clock: the node's, as this front runs it.
        self.node = FrontNode(self, config, KeyStore.load(config.keys_dir, self.passphrase), self.database)
        self.node.peers.update(load_peers(self.db))
        #: Envelopes this front took in itself, and those it passed to the node process.
        self.accepted = 0
        self.forwarded = 0

    # -- the link to the node process ---------------------------------------------------

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, self.link = await loop.create_unix_connection(
            lambda: Link(self._on_frame, self._on_lost), str(self.link_socket)
        )
        self.link.send("hello", os.getpid(), self.node.keys.signing_kid)

    def _on_frame(self, link: Link, frame: tuple[Any, ...]) -> None:
        kind = frame[0]
        if kind in ("peers", "keys"):
            try:
                if kind == "peers":
                    self.node.peers.update(load_peers(self.db, frame[1]))
                else:
                    self.node.use_keys(KeyStore.load(self.config.keys_dir, self.passphrase))
                    self.node.refresh_discovery()
            except Exception as exc:
                # Never serve with keys the node process has moved on from: the front that
                # replaces this one loads them afresh. What is in flight was not answered,
                # and its senders send it again.
                log.error("inbox front could not reload; exiting", what=kind, **failure_fields(exc))
                os._exit(1)
        elif kind == "ready":
            self.ready.set()
        elif kind == "disk-failure":
            # Another process's sync was refused: what it committed may not be on disk,
            # and our own syncs, on a descriptor opened later, might not be told.
            self.database.fail(OSError(errno.EIO, frame[1]))

    def _disk_failed(self, exc: OSError) -> None:
        if self.link is not None:
            self.link.send("disk-failure", str(exc))

    def _on_lost(self, link: Link) -> None:
        # The node process is gone (stopped, or killed): a front never serves alone.
        log.info("node process gone; front exits")
        os._exit(0)

    # -- HTTP ---------------------------------------------------------------------------------

    async def inbox(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await read_envelope(request, self.config.max_envelope_bytes, self.config.body_timeout_s,
                                   self.node.metrics)
        if isinstance(body, web.Response):
            return body
        try:
            parsed = parse_envelope(body, max_bytes=self.config.max_envelope_bytes)
        except ProtocolError as exc:
            # Not an envelope at all: the answer depends on nothing the node process holds,
            # so junk stops here.
            self.node.metrics.inbox("unknown", exc.code.value, receipt=False)
            return protocol_error_response(exc)
        try:
            node = self.node
            if parsed.message_type not in FAST_TYPES or parsed.sender not in node.peers:
                self.forwarded += 1
                return await self.forward(request, body)
            opened = open_envelope(parsed, me=node.me, now=node.clock.now(), peer_keys=node.peers.get,
                                   decryption_keys=node.keys.decryption_keys)
        except ProtocolError:
            # Refusals (and stored receipts for old bytes) come from the node process.
            self.forwarded += 1
            return await self.forward(request, body)
        self.accepted += 1
        return inbox_response(await self.node.accept(opened))

    async def forward(self, request: web.BaseRequest, body: bytes | None = None) -> web.Response:
        """Pass a request through to the node process and its answer back, unchanged.

        The answer is read in full before it is sent on: a node process that fails half way
        then gets a clean 500 here, never half an answer followed by another."""
        assert self.upstream is not None
        named = ",".join(request.headers.getall("Connection", [])).split(",")  # hop-by-hop too
        hop = HOP_BY_HOP | {name.strip().lower() for name in named}
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in hop)
        headers[FRONT_CLIENT_HEADER] = client_address(request)  # replaces any the client sent
        if body is None and request.body_exists:
            # As large as the node process takes, no more, and as soon.
            body = await read_body(request, timeout_s=self.config.body_timeout_s)
        async with self.upstream.request(request.method, "http://node" + request.path_qs, headers=headers,
                                         data=body, allow_redirects=False,
                                         skip_auto_headers=("Content-Type", "Accept-Encoding", "User-Agent")
                                         ) as upstream:
            payload = await upstream.read()
            answer = CIMultiDict((k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP)
            return web.Response(status=upstream.status, reason=upstream.reason, body=payload, headers=answer)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Every request: ``POST /inbox`` is ours, anything else goes to the node process.
        Served by aiohttp's low-level server: with one route of its own, a front has no use
        for an application's router and middleware chain, which cost it CPU on every
        envelope."""
        if request.headers.get("Expect"):  # as aiohttp's router: before, and outside, the middleware
            await self.expect(request)
        # The router matches the path with encoded slashes left encoded: so do we.
        ours = request.method == "POST" and request.rel_url.path_safe == INBOX_PATH
        if not ours:  # timed by the node process, which answers it
            return await error_middleware(request, self.forward)  # type: ignore[arg-type]
        started = time.perf_counter()
        response = await error_middleware(request, self.inbox)  # type: ignore[arg-type]
        self.node.metrics.http_seconds.labels("inbox", status_class(response.status)).observe(
            time.perf_counter() - started)
        return response

    @staticmethod
    async def expect(request: web.BaseRequest) -> None:
        """Answer ``Expect: 100-continue`` (clients such as curl wait for it before they
        send a body) and refuse any other expectation, as aiohttp's router does for an
        application."""
        if request.version == aiohttp.HttpVersion11:
            expect = request.headers["Expect"]
            if expect.lower() != "100-continue":
                raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the answer proper has not started

    def server(self, cap: int) -> web.Server:
        loop = asyncio.get_running_loop()
        limit = client_max_size(self.config)  # as the node process's app

        def make_request(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
            return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=limit)

        return CappedServer(self.handle, request_factory=make_request, cap=cap, **server_settings(self.config))


async def run(front: Front, sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    quiet_loop_errors(loop)
    stop = asyncio.Event()
    # Ctrl+C reaches the whole process group: the node process stops its fronts itself (with
    # SIGTERM, once it stops taking their work), so a front does not act on SIGINT.
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # Idle connections to the node process are let go before it would close them itself
    # (``header_timeout_s``): a request sent on one it is closing would fail.
    keepalive_s = min(15.0, front.config.header_timeout_s / 2)
    front.upstream = aiohttp.ClientSession(
        connector=aiohttp.UnixConnector(path=str(front.http_socket), keepalive_timeout=keepalive_s),
        auto_decompress=False,
    )
    try:
        await front.connect()
        # A disk failure the node process knows of, and peers' and our keys as they are
        # now, come before the first envelope this front takes in.
        await asyncio.wait_for(front.ready.wait(), 60)
    except BaseException:
        await front.upstream.close()
        await front.database.close()
        raise
    runner = web.ServerRunner(front.server(connection_cap(front.config)), handle_signals=False)
    await runner.setup()
    await serve_socket(runner, sock)
    settle_gc()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await front.upstream.close()
        await front.database.close()  # what it committed is synced, and answered
        log.info("inbox front stopped", took_in=front.accepted, passed_on=front.forwarded)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node.http.front", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--http", type=Path, required=True)
    parser.add_argument("--link", type=Path, required=True)
    args = parser.parse_args(argv)
    config = load_config(args.config, os.environ)
    configure_logging(config.log_format, config.log_level)
    sock = socket.socket(fileno=args.fd)
    try:
        front = Front(config, args.http, args.link)
        asyncio.run(run(front, sock))
    except (OSError, TimeoutError) as exc:
        # Typically the node process died as this front started: its socket is gone or
        # refuses. The node process (or its replacement) starts a new front.
        log.error("inbox front cannot reach its node process; exiting", **failure_fields(exc))
        return 1
    except Exception as exc:
        log.error("inbox front failed; exiting", **failure_fields(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
