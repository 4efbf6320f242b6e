"""How many connections a serving process keeps open, and which one goes when it has too
many.

Each connection holds a file, and a process has a limit of open files (often 1,024).
aiohttp accepts until the limit is reached; then asyncio can accept nothing at all, not
even the one request that matters, for as long as idle connections stay open: 1,100 slow
clients used to take a node down (issue 11). So every serving process (the node process,
and each inbox front: see :mod:`node.http.fronts`):

- at start, raises its soft open-file limit as far as its cap needs (never past the hard
  limit) and derives its cap from what it got: ``max_connections``, or fewer when the
  limit leaves less room after :data:`RESERVED_FILES` (:func:`connection_cap`);
- serves through a :class:`CappedServer`: when a new connection would take it over the
  cap, the oldest connection with no request in progress is closed to make room. Those
  are connections still sending their request head (a slow client never reaches a
  handler) or kept alive between requests: closing them costs a well-behaved client at
  most a reconnection, so a flood of slow connections cannot lock out a normal one.
  Refusing newcomers instead would hand the node to whoever connected first. Only when
  every connection is in the middle of a request (bounded by ``body_timeout_s`` and the
  handlers' own time) is the newcomer answered ``503`` and closed;
- accepts :data:`ACCEPT_BATCH` connections at a time (:func:`serve_socket`), so that a
  flood cannot take it past its file limit before the cap has seen the newcomers;
- closes a connection that has not sent a whole request head ``header_timeout_s`` after
  it opened or after its last answer (aiohttp's keep-alive timer, which also closes a
  connection that is waiting for its first request), and reads what is left of a body
  its route did not read for at most ``lingering_time`` after the answer.

A request body that a route reads is bounded by :func:`node.http.bodies.read_body`.

"In progress" means from the moment the request head is parsed until its handler returns
the answer: aiohttp then writes the answer into the transport, which sends what it holds
even when the connection is closed to make room; only an answer larger than the
transport's buffer, to a client too slow to take it, can be cut short that way.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from node.base.config import Config
from node.base.errors import HTTP_ERROR_CODES, error_body
from node.base.logs import get_logger
from node.base.repeats import Repeats

try:
    import resource
except ImportError:  # not POSIX: no limit to read or raise
    resource = None  # type: ignore[assignment]

log = get_logger("node.connections")

#: Files a serving process needs besides the connections it is sent: the standard streams
#: and the log, the database (several files for each of its connections), lock files, the
#: event loop, the listening sockets, and the fronts' link and processes.
OWN_FILES = 64
#: Connections it opens itself: aiohttp's client pool holds at most 100 (the node's to
#: peers, a front's to its node process).
OUTBOUND_CONNECTIONS = 100
#: Connections asyncio accepts in one go (the ``backlog`` it is given) before the cap sees
#: any of them: the cap closes connections only when asyncio hands them over, a loop turn
#: or two after it accepted them, and meanwhile it accepts more. With aiohttp's 128 a flood
#: of new connections took a process 290 files past its cap (and out of files); with 16,
#: about 50 (3,000 clients reconnecting as fast as they could, one 2-core machine).
ACCEPT_BATCH = 16
#: What the cap must leave for connections accepted and not yet seen: four batches.
ACCEPT_BURST = 4 * ACCEPT_BATCH
#: Connections the kernel queues until the process accepts them (the listen backlog
#: proper): long, so that a burst waits rather than has its connections refused.
LISTEN_BACKLOG = 1024
RESERVED_FILES = OWN_FILES + OUTBOUND_CONNECTIONS + ACCEPT_BURST
#: aiohttp's default: how long a route's unread body is read and dropped after the
#: answer (so that the client can read the answer), at most.
LINGERING_S = 10.0

_UNAVAILABLE_BODY = json.dumps(
    error_body(HTTP_ERROR_CODES[503], "every connection this node can hold is in the middle of a request; try again")
).encode()
#: Sent to a newcomer when every connection is busy, before any request is read.
UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(_UNAVAILABLE_BODY)
) + _UNAVAILABLE_BODY


def listening_sockets(host: str, port: int, count: int = 1) -> list[socket.socket]:
    """``count`` sockets listening on one address. More than one share it
    (``SO_REUSEPORT``: the kernel spreads new connections over them) and are inherited by
    the inbox fronts; all listen before any front starts, so no front gets every early
    connection, and until a process accepts them they wait in the kernel's queue. One
    alone does not share: a second node on the same port fails to start."""
    sockets: list[socket.socket] = []
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.set_inheritable(True)
            sock.bind((host, port))
            port = sock.getsockname()[1]  # port 0: the others join the port the first got
            sock.listen(LISTEN_BACKLOG)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def serve_socket(runner: web.BaseRunner, sock: socket.socket) -> web.SockSite:
    """Serve ``runner`` on the listening socket ``sock``: asyncio accepts up to
    :data:`ACCEPT_BATCH` connections at a time, from a kernel queue of
    :data:`LISTEN_BACKLOG`."""
    site = web.SockSite(runner, sock, backlog=ACCEPT_BATCH)
    await site.start()
    sock.listen(LISTEN_BACKLOG)  # asyncio made the queue as short as its batch: lengthen it again
    return site


def cap_for(max_connections: int, soft_limit: int | None) -> int:
    """The connection cap under an open-file limit of ``soft_limit`` (None: no limit known).
    The reserve is at most half the limit, so a very low limit still leaves a few."""
    if soft_limit is None:
        return max_connections
    reserve = min(RESERVED_FILES, soft_limit // 2)
    return max(1, min(max_connections, soft_limit - reserve))


def raise_file_limit(wanted: int) -> tuple[int | None, int | None]:
    """Raise this process's soft limit of open files to ``wanted`` where the hard limit
    allows (never lower it); returns the (soft, hard) limits then in force, None for
    unlimited or unknown."""
    if resource is None:
        return None, None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # e.g. macOS caps it lower than the hard limit says
            pass
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    return (None if soft == unlimited else soft), (None if hard == unlimited else hard)


def connection_cap(config: Config) -> int:
    """Raise this process's open-file limit for ``config.max_connections`` and return the
    cap it allows; says so in one log line (a warning when the limit lowers it)."""
    soft, hard = raise_file_limit(config.max_connections + RESERVED_FILES)
    cap = cap_for(config.max_connections, soft)
    say = log.warning if cap < config.max_connections else log.info
    say("connection cap", cap=cap, max_connections=config.max_connections, open_files_limit=soft,
        hard_limit=hard)
    return cap


def server_settings(config: Config) -> dict[str, Any]:
    """aiohttp server settings that bound how long a connection may take: with no request
    in progress (waiting for a head, or idle between requests), and for an unread body.
    No access log: the node logs each envelope itself, with peer, id and type."""
    return {"access_log": None, "keepalive_timeout": config.header_timeout_s,
            "lingering_time": min(config.body_timeout_s, LINGERING_S)}


Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class CappedServer(web.Server):
    """aiohttp's low-level server, holding at most ``cap`` connections (see the module's
    doc). Which connections are open, in the order they opened, and which have a request
    in progress is seen through the two hooks aiohttp's server has for it
    (``connection_made`` and ``connection_lost``) and around the request handler."""

    def __init__(self, handler: Handler, *, cap: int, **kwargs: Any) -> None:
        self.cap = cap
        #: Open connections, oldest first.
        self._open: OrderedDict[web.RequestHandler, None] = OrderedDict()
        #: Connections whose request is being handled (its body read, its answer made).
        self._busy: set[web.RequestHandler] = set()
        super().__init__(self._tracking(handler), **kwargs)
        self._repeats = Repeats(asyncio.get_running_loop(), self._summary)
        #: Connections closed to make room, and newcomers refused, since the start.
        self.evicted = 0
        self.refused = 0

    def _tracking(self, handler: Handler) -> Handler:
        busy = self._busy

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            protocol = request.protocol
            busy.add(protocol)
            try:
                return await handler(request)
            finally:
                busy.discard(protocol)

        return handle

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._open[handler] = None
        if len(self._open) > self.cap:
            self._make_room(handler, transport)

    def connection_lost(self, handler: web.RequestHandler, exc: BaseException | None = None) -> None:
        self._open.pop(handler, None)
        super().connection_lost(handler, exc)

    def _make_room(self, newcomer: web.RequestHandler, transport: asyncio.Transport) -> None:
        for oldest in self._open:
            if oldest not in self._busy and oldest is not newcomer:
                break
        else:
            del self._open[newcomer]
            transport.write(UNAVAILABLE)
            newcomer.force_close()  # the transport sends the answer, then closes
            self.refused += 1
            if self._repeats.first("refused"):
                log.warning("connection cap reached with every connection busy: refusing a connection",
                            cap=self.cap)
            return
        del self._open[oldest]
        oldest.force_close()
        self.evicted += 1
        if self._repeats.first("evicted"):
            log.warning("connection cap reached: closing the oldest connection with no request in progress",
                        cap=self.cap)

    def _summary(self, kind: str, count: int) -> None:
        log.warning(_SUMMARIES[kind], cap=self.cap, count=count, interval_s=self._repeats.interval_s)


_SUMMARIES = {
    "evicted": "connection cap reached: more connections with no request in progress closed",
    "refused": "connection cap reached with every connection busy: more connections refused",
}


class NodeRunner(web.AppRunner):
    """aiohttp's :class:`~aiohttp.web.AppRunner` for the node's application, serving it
    through a :class:`CappedServer` with :func:`server_settings`."""

    def __init__(self, app: web.Application, config: Config, *, cap: int) -> None:
        self.cap = cap
        self.server_settings = server_settings(config)
        super().__init__(app, handle_signals=False, **self.server_settings)

    async def _make_server(self) -> web.Server:
        # The hook aiohttp's runners differ by (AppRunner, ServerRunner). aiohttp's own
        # starts the application (on_startup, cleanup_ctx) and makes a server that routes
        # each request through it; ours serves the same two (public) callables.
        plain = await super()._make_server()
        return CappedServer(plain.request_handler, request_factory=plain.request_factory, cap=self.cap,
                            **self.server_settings)

    @property
    def capped(self) -> CappedServer:
        server = self.server
        assert isinstance(server, CappedServer), "not set up"
        return server
