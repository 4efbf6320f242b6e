"""Inbox fronts: extra processes that let the inbox use more than one core.

``cryptography``'s Ed25519 holds the GIL, so one Python process verifies and decrypts
envelopes on one core. With ``inbox_workers = N`` (N > 0) ``refnode serve`` runs:

- **the node process**: delivery, the scheduler and every route, served both on the
  public address and on a Unix socket in the run folder (for the fronts);
- **N front processes** (``python -m node.http.front``), accepting on the public address too.
  The listening sockets are made by the node process (``SO_REUSEPORT``: the kernel
  spreads new connections over the N + 1 processes) and inherited.

A front takes in ``POST /inbox`` for the two referral types (offers and status updates)
from peers it knows, all the way, as the node process does (:meth:`Node.accept`): parse,
outer signature, addressing, decryption, inner signature, message validation, then the
transaction that de-duplicates, applies and commits, and the receipt. Every process writes
the one database in turns (``Database(shared=True)``: see ``node.storage.db``). What such a
transaction changed that the node process must act on (new outbox items to deliver, peers'
keys) the front tells it over the *link* (a second Unix socket) once committed. Every other
request, and every envelope the front cannot open (a refusal, a handshake message, a sender
or key it does not know yet), is passed through unchanged to the node process over HTTP, so
every answer and every refusal that depends on more than the inbox comes from one place. A
body that is not an envelope at all is refused by the front. After a change to peers' keys
or to its own, the node process tells the fronts to reload them. A front that dies is
started again (after a growing delay if it keeps dying at start); until its replacement
says hello, the node process takes the connections the kernel hands the dead front's
socket.

The link carries length-prefixed pickles between processes of the same node and user:
the socket lives in a 0700 folder and is 0600, like the keys next to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import pickle
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from node.base.config import Config
from node.base.logs import failure_fields, get_logger
from node.base.metrics import share_between_processes
from node.base.repeats import quiet_loop_errors
from node.federation.outbox import Effects
from node.federation.runtime import Node, load_peers
from node.http.connections import NodeRunner, connection_cap, listening_sockets, serve_socket
from protocol.wire import MessageType

log = get_logger("node.fronts")

#: The message types a front opens itself; every other one goes to the node process.
FAST_TYPES = frozenset({MessageType.REFERRAL_OFFER, MessageType.REFERRAL_STATUS})

_LENGTH = struct.Struct("!I")
#: A front that exits sooner than this after it started is restarted after a growing delay.
_SETTLED_S = 10.0
#: Longest Unix socket path Linux takes (sun_path is 108 bytes with its NUL).
_MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class RunPaths:
    """Where the node process's two Unix sockets are."""

    folder: Path
    http: Path
    link: Path

    @classmethod
    def make(cls, config: Config) -> RunPaths:
        folder = config.data_dir.absolute() / "run"
        if len(str(folder / "fronts.sock")) > _MAX_SOCKET_PATH:  # a deep data folder
            folder = Path(tempfile.mkdtemp(prefix="refnode-run-"))
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)
        for name in ("http.sock", "fronts.sock"):
            (folder / name).unlink(missing_ok=True)  # left by a node that was killed
        return cls(folder, folder / "http.sock", folder / "fronts.sock")


# -- the link: frames between a front and the node process ------------------------------


class Link(asyncio.Protocol):
    """One end of the link. ``on_frame`` gets each decoded frame; ``send`` writes one."""

    def __init__(self, on_frame: Callable[[Link, tuple[Any, ...]], None],
                 on_lost: Callable[[Link], None]) -> None:
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(self._buffer)
            end = _LENGTH.size + size
            if len(self._buffer) < end:
                return
            frame = pickle.loads(self._buffer[_LENGTH.size:end])  # noqa: S301 (our own process, see module doc)
            del self._buffer[:end]
            self._on_frame(self, frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._on_lost(self)

    def send(self, *frame: Any) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        self.transport.write(_LENGTH.pack(len(data)) + data)


# -- the node process's side --------------------------------------------------------------


class Fronts:
    """Runs and watches the front processes, and serves their link."""

    def __init__(self, node: Node, config: Config, paths: RunPaths, sockets: list[socket.socket],
                 runner: web.BaseRunner | None = None) -> None:
        self.node = node
        #: The node process's server: it takes a missing front's connections meanwhile.
        self.runner = runner
        self._covers: dict[int, web.SockSite] = {}
        self.config = config
        self.paths = paths
        self.sockets = sockets
        self.links: set[Link] = set()
        self._server: asyncio.AbstractServer | None = None
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Event()
        self._stopping = False
        self._restart_delay: dict[int, float] = {}
        node.db.on_failure.append(self._disk_failed)

    async def start(self, timeout_s: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        old_umask = os.umask(0o177)
        try:
            self._server = await loop.create_unix_server(
                lambda: Link(self._on_frame, self._on_lost), str(self.paths.link)
            )
        finally:
            os.umask(old_umask)
        self.node.fronts = self
        for index in range(len(self.sockets)):
            await self._spawn(index)
        try:
            await asyncio.wait_for(self._all_connected(), timeout_s)
        except TimeoutError:
            from node.http.serve import ServeError

            raise ServeError(f"the inbox fronts did not start within {timeout_s:.0f} s", code="fronts") from None
        log.info("inbox fronts started", count=len(self.sockets))

    async def _all_connected(self) -> None:
        while len(self.links) < len(self.sockets):
            self._connected.clear()
            await self._connected.wait()

    async def _spawn(self, index: int) -> None:
        sock = self.sockets[index]
        command = [sys.executable, "-m", "node.http.front", "--fd", str(sock.fileno()),
                   "--http", str(self.paths.http), "--link", str(self.paths.link)]
        if self.config.config_path.is_file():
            command += ["--config", str(self.config.config_path)]
        env = dict(os.environ, REFNODE_DATA_DIR=str(self.config.data_dir.absolute()))
        proc = await asyncio.create_subprocess_exec(*command, pass_fds=(sock.fileno(),), env=env)
        self._procs[index] = proc
        task = asyncio.get_running_loop().create_task(self._watch(index, proc))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch(self, index: int, proc: asyncio.subprocess.Process) -> None:
        started = time.monotonic()
        code = await proc.wait()
        if not self._stopping:
            await self._cover(index)
        # A front that keeps dying soon after it starts (keys it cannot read, say) is
        # started again less and less often; one that ran a while, at once.
        quick = time.monotonic() - started < _SETTLED_S
        delay = self._restart_delay[index] = min(self._restart_delay.get(index, 0.25) * 2, 30.0) if quick else 0.5
        while not self._stopping:
            log.error("inbox front exited; starting another", pid=proc.pid, exit_code=code, delay_s=delay)
            await asyncio.sleep(delay)  # never a tight loop of crashes
            if self._stopping:
                return
            try:
                await self._spawn(index)
                self.node.metrics.front_restarts.inc()
                return
            except OSError as exc:  # e.g. out of processes: try again, less often
                log.error("cannot start an inbox front", **failure_fields(exc))
                delay = min(delay * 2, 30.0)

    async def _cover(self, index: int) -> None:
        """Take the connections of front ``index`` here until its replacement says hello:
        the kernel keeps giving its socket a share of them, dead front or not."""
        if self.runner is None or index in self._covers:
            return
        # A duplicate descriptor: stopping the site closes it, not the socket a new front
        # inherits.
        self._covers[index] = await serve_socket(self.runner, self.sockets[index].dup())

    async def _uncover(self, index: int) -> None:
        site = self._covers.pop(index, None)
        if site is not None:
            await site.stop()

    async def stop(self) -> None:
        self._stopping = True
        for proc in self._procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        async def reap(proc: asyncio.subprocess.Process) -> None:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()

        await asyncio.gather(*(reap(proc) for proc in self._procs.values()))
        for task in list(self._watchers):
            task.cancel()
        for index in list(self._covers):
            await self._uncover(index)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for link in list(self.links):
            if link.transport is not None:
                link.transport.close()
        self.node.fronts = None
        await asyncio.gather(*self._tasks, return_exceptions=True)
        log.info("inbox fronts stopped")

    def status(self) -> dict[str, int]:
        return {"configured": len(self.sockets), "connected": len(self.links)}

    def announce(self, what: str, ids: tuple[str, ...]) -> None:
        """Tell every front that peers' keys (``ids``) or our own (``"keys"``) changed."""
        for link in self.links:
            link.send(what, ids)

    def _disk_failed(self, exc: OSError) -> None:
        """A sync of the shared database was refused, here or in a front: every process
        stops taking reads and writes (see ``node.storage.disk.DiskFailure``)."""
        for link in self.links:
            link.send("disk-failure", str(exc))

    def _on_lost(self, link: Link) -> None:
        self.links.discard(link)

    def _on_frame(self, link: Link, frame: tuple[Any, ...]) -> None:
        if frame[0] == "hello":
            # The front loaded keys and peers before it said hello: whatever changed in
            # between, it must load again.
            _, pid, signing_kid = frame
            index = next((i for i, proc in self._procs.items() if proc.pid == pid), None)
            if index is not None and index in self._covers:
                self._spawn_task(self._uncover(index))
            self.links.add(link)
            if self.node.db.failed:
                link.send("disk-failure", "the disk refused to sync the database; restart the node")
            link.send("peers", tuple(self.node.peers))
            if signing_kid != self.node.keys.signing_kid:
                link.send("keys", ())
            link.send("ready")  # the front serves only once it has heard all of this
            self._connected.set()
            return
        if frame[0] == "disk-failure":
            self.node.db.fail(OSError(errno.EIO, frame[1]))  # and every front hears of it
            return
        if frame[0] == "effects":
            _, poke, peer_ids = frame
            self._spawn_task(self._apply_effects(set(poke), tuple(peer_ids)))

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _apply_effects(self, poke: set[str], peer_ids: tuple[str, ...]) -> None:
        """What a front's committed transaction changed: peers' keys to load (and announce
        to every front) and peers with new outbox items to deliver."""
        try:
            peers = await self.node.db.read(lambda conn: load_peers(conn, peer_ids)) if peer_ids else {}
            self.node.apply_effects(Effects(poke=poke, peers=peers))
        except Exception as exc:  # delivery looks again on its own schedule
            log.error("effects of an inbox front's transaction not applied", **failure_fields(exc))


def serve_with_fronts(app: web.Application, config: Config, on_listening: Callable[[], None]) -> None:
    """Run ``app`` in this process on a Unix socket and ``config.inbox_workers`` fronts
    on the public address, until SIGINT or SIGTERM."""
    from node.http.appkeys import NODE

    # One more than the fronts: the node process takes in envelopes too.
    sockets = listening_sockets(config.host, config.port, config.inbox_workers + 1)
    paths = RunPaths.make(config)
    # Every process counts in files there, which /metrics adds up (see node.base.metrics).
    share_between_processes(paths.folder / "metrics")

    async def run() -> None:
        from node.http.serve import stop_on_signals

        loop = asyncio.get_running_loop()
        stop = stop_on_signals(loop)
        quiet_loop_errors(loop)
        runner = NodeRunner(app, config, cap=connection_cap(config))
        await runner.setup()
        fronts: Fronts | None = None
        try:
            old_umask = os.umask(0o177)
            try:
                await web.UnixSite(runner, str(paths.http)).start()
            finally:
                os.umask(old_umask)
            await serve_socket(runner, sockets[0])
            fronts = Fronts(app[NODE], config, paths, sockets[1:], runner)
            await fronts.start()
            on_listening()
            await stop.wait()
        finally:
            if fronts is not None:
                await fronts.stop()
            await runner.cleanup()

    try:
        asyncio.run(run())
    finally:
        for sock in sockets:
            sock.close()
        for path in (paths.http, paths.link):
            path.unlink(missing_ok=True)
        shutil.rmtree(paths.folder / "metrics", ignore_errors=True)
        with contextlib.suppress(OSError):
            paths.folder.rmdir()  # only if empty
