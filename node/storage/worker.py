"""One thread that runs blocking calls in order, for the database (:mod:`node.storage.db`).

The database's WAL syncs (and the COMMITs of writes that go alone) run on one such thread;
a shared database has two more, one to wait for another process's turn to write and one to
sync for reads; checkpoints have one of their own (:mod:`node.storage.checkpoint`).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from node.base.logs import failure_fields, get_logger

T = TypeVar("T")
# The database's logger: the worker's threads are the database's.
log = get_logger("node.db")


class Worker:
    """One thread that runs blocking calls in order: for the loop (:meth:`call`) or for a
    synchronous caller (:meth:`run`).

    Used instead of a ``ThreadPoolExecutor``: a ``SimpleQueue`` in and
    ``call_soon_threadsafe`` out, with no Python-level lock for its thread to hold while
    it waits for the GIL. Under bench/inbox_throughput.py py-spy found the event loop in the
    executor's ``submit`` in 8 to 10% of its samples, and in this queue's ``put`` in 5 to 6%:
    waking a thread stays dear on a virtual machine, so there is one for commit and sync."""

    def __init__(self, name: str) -> None:
        # Each item: the call, whether it is still wanted, and what to do with its outcome.
        self._queue: queue.SimpleQueue[
            tuple[Callable[[], Any], Callable[[], bool], Callable[[bool, Any], None]] | None
        ] = queue.SimpleQueue()
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, wanted, done = item
            if not wanted():  # its caller was cancelled while it waited: skip it
                continue
            try:
                outcome = (True, fn())
            except BaseException as exc:  # handed to the caller, who raises it
                outcome = (False, exc)
            try:
                done(*outcome)
            except BaseException as exc:  # never let the thread die: later calls would hang
                log.error("worker could not hand back a result", **failure_fields(exc))

    def _put(self, fn: Callable[[], Any], wanted: Callable[[], bool], done: Callable[[bool, Any], None]) -> None:
        if self._stopped:
            raise RuntimeError("the database's worker thread is stopped")
        self._queue.put((fn, wanted, done))

    def call(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def done(ok: bool, value: Any) -> None:
            if not loop.is_closed():  # a loop that ended has nobody left to tell
                loop.call_soon_threadsafe(_settle, future, ok, value)

        self._put(fn, lambda: not future.cancelled(), done)
        return future

    def run(self, fn: Callable[[], T]) -> T:
        future: Future[T] = Future()

        def done(ok: bool, value: Any) -> None:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

        self._put(fn, lambda: True, done)
        return future.result()

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)
        self._thread.join()


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller was cancelled
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
