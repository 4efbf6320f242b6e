"""``/healthz`` and ``/readyz``: the process answers; the node is ready only when its
database takes a real write, its schema is current and its fronts run. Each case is a real
condition on the real SQLite file: another program holding the write lock, a schema
changed under the node, a disk that refused a sync."""

from __future__ import annotations

import asyncio
import errno
import json
import sqlite3
import sys

import aiohttp
from conftest import wait_for
from test_inbox_refusals import envelope, keys_of, offer, post
from test_two_nodes import connect_by_invitation

from node.storage.migrations import LATEST

#: Another program: takes the write lock of the database named on its command line, says
#: "held", and lets go when a line arrives on its standard input.
HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


async def get(url: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with aiohttp.ClientSession() as session, session.get(url) as r:
        return r.status, json.loads(await r.read())


async def test_healthz_answers_and_readyz_checks_a_real_write(node_factory):
    # Few scheduler ticks: each write tried while the lock is held waits SQLite's 5 s.
    broker = await node_factory("Broker", outbox_poll_interval_s=60)
    assert await get(broker.url + "/healthz") == (200, {"status": "ok"})
    assert await get(broker.url + "/readyz") == (200, {"ready": True, "checks": {
        "database": "ok", "schema": "ok", "fronts": "ok"}})
    probed = await broker.node.db.read(lambda conn: conn.execute("SELECT probed_at FROM health_probe").fetchone())
    assert probed is not None  # the probe wrote, and committed

    # Another program takes the database's write lock (an sqlite3 shell, a stuck tool): the
    # node cannot write, so it is not ready, though it answers.
    locker = await asyncio.create_subprocess_exec(sys.executable, "-c", HOLD_LOCK, str(broker.config.database_path),
                                                  stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        assert locker.stdout is not None and (await locker.stdout.readline()).strip() == b"held"
        status, body = await get(broker.url + "/readyz")
        assert status == 503 and body["ready"] is False
        assert body["checks"]["database"] in ("locked", "timeout") and body["checks"]["schema"] == "ok"
        assert (await get(broker.url + "/healthz"))[0] == 200
    finally:
        await asyncio.wait_for(locker.communicate(b"\n"), 30)  # it lets go

    # And ready again once the lock is let go: writes refused meanwhile (the delivery
    # scheduler's too) leave the node able to write.
    async def ready() -> bool:
        return (await get(broker.url + "/readyz"))[0] == 200

    await wait_for(ready, within_s=30)

    # The schema is changed under the node (a newer release ran on the same file).
    other = sqlite3.connect(broker.config.database_path, isolation_level=None)
    try:
        other.execute(f"PRAGMA user_version = {LATEST + 1}")
        status, body = await get(broker.url + "/readyz")
        assert (status, body["checks"]["schema"]) == (503, "ahead")
        other.execute(f"PRAGMA user_version = {LATEST}")
        assert (await get(broker.url + "/readyz"))[0] == 200
    finally:
        other.close()


async def test_a_disk_that_refused_a_sync_is_not_ready_and_senders_are_told_to_retry(node_factory):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    # The disk refused to sync the WAL (as node.storage.disk's WalSyncer reports it): what
    # was committed since may not be on disk, so the node takes nothing more until restarted.
    broker.node.db.fail(OSError(errno.EIO, "injected: the disk refused the sync"))
    status, body = await get(broker.url + "/readyz")
    assert (status, body["checks"]["database"]) == (503, "failed")
    good = envelope(agency, broker.node.me, keys_of(broker), offer(cid, "rfl_after"), envelope_id="env_after")
    async with aiohttp.ClientSession() as session:
        async with session.post(broker.url + "/refnode/v1/inbox", data=good,
                                headers={"Content-Type": "application/jose+json"}) as r:
            answer = json.loads(await r.read())
            # Retryable, with no receipt: nothing was decided, the sender keeps the envelope.
            assert (r.status, answer["error"]["code"], r.headers.get("Retry-After")) == (503, "unavailable", "30")
            assert "receipt" not in answer
    assert (await post(broker, good))[0] == 503
