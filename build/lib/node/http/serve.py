"""``refnode serve``: run a node until SIGINT or SIGTERM.

One ``serve`` per data folder (a lock file says so: two would deliver the same outbox
twice). With ``inbox_workers = 0`` one process does everything; with more, the node
process and the inbox fronts share the public address, and the node process also serves
a Unix socket for what the fronts pass on (see :mod:`node.http.fronts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from aiohttp import web

from node.base.config import Config
from node.base.repeats import quiet_loop_errors
from node.base.tokens import metrics_token
from node.http.app import create_app
from node.http.connections import NodeRunner, connection_cap, listening_sockets, serve_socket
from node.storage.integrity import DatabaseDamaged, check_database
from node.storage.sqlite import SchemaTooNew


class ServeError(Exception):
    """The node cannot be served: ``code`` says why (``locked``, ``listen``)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def serve(config: Config, *, passphrase: bytes | None, on_listening: Callable[[], None],
          make_app: Callable[..., web.Application] = create_app) -> None:
    """Serve until stopped; ``on_listening`` runs once the node takes connections.
    ``make_app`` builds the application (``node.web.site.create_site`` adds the console).
    A damaged database, or one newer than this release, is refused before anything
    starts (:func:`node.storage.integrity.check_database`)."""
    try:
        check_database(config.database_path)
    except DatabaseDamaged as exc:
        raise ServeError(str(exc), code="database_damaged") from None
    except SchemaTooNew as exc:
        raise ServeError(str(exc), code="schema_too_new") from None
    try:
        metrics_token(config.data_dir)  # written now if missing; an unsafe one stops us here
    except (OSError, ValueError) as exc:
        raise ServeError(f"the metrics token: {exc}", code="metrics_token") from None
    app = make_app(config, passphrase=passphrase)

    def listening() -> None:
        on_listening()
        notify_service_manager("READY=1")  # systemd's Type=notify: it takes connections now

    async def settle(app: web.Application) -> None:
        settle_gc()

    app.on_startup.append(settle)
    with serve_lock(config.data_dir):
        try:
            if config.inbox_workers:
                from node.http.fronts import serve_with_fronts

                serve_with_fronts(app, config, listening)
            else:
                asyncio.run(serve_alone(app, config, listening))
        except OSError as exc:  # e.g. the port is taken
            raise ServeError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}",
                             code="listen") from None


async def serve_alone(app: web.Application, config: Config, on_listening: Callable[[], None]) -> None:
    """Serve ``app`` on the configured address until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = stop_on_signals(loop)
    quiet_loop_errors(loop)
    runner = NodeRunner(app, config, cap=connection_cap(config))
    await runner.setup()
    try:
        await serve_socket(runner, listening_sockets(config.host, config.port)[0])
        on_listening()
        await stop.wait()
    finally:
        await runner.cleanup()


def stop_on_signals(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    """An event that SIGINT and SIGTERM set."""
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


def settle_gc() -> None:
    """Once a serving process has started: what start-up allocated lives as long as the
    process, so take it out of the garbage collector's sight, and collect the young
    generation less often. In-process, collections cost 55 µs of the inbox's 1 ms per
    envelope before, about 1 µs after."""
    gc.freeze()
    gc.set_threshold(10_000, 20, 50)


def notify_service_manager(state: str) -> bool:
    """Send ``state`` to the service manager that started us, if it asked (systemd's
    ``NOTIFY_SOCKET``, for ``Type=notify``: see deploy/refnode.service); whether it was sent.
    The protocol is one datagram on a Unix socket, stable and documented by systemd
    (sd_notify(3)), so no library is needed for it."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address.startswith(("/", "@")):
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError:
        return False
    return True


@contextlib.contextmanager
def serve_lock(data_dir: Path) -> Iterator[None]:
    """Hold the data folder's serve lock, or raise ``ServeError(code="locked")``."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(data_dir / "serve.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ServeError(f"another 'refnode serve' is running on {data_dir.absolute()}",
                             code="locked") from None
        yield
