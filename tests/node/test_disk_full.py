"""The disk fills up during a stream of inbound envelopes (a small tmpfs the test mounts,
the receiving node's whole data folder on it): senders get a retryable ``503`` with
``Retry-After`` and no receipt, nothing that was acknowledged is lost, and when there is
room again the node takes envelopes again by itself, without a restart.

Needs root (to mount); skipped, saying so, where the test cannot mount a filesystem."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from conftest import wait_for
from test_inbox_refusals import envelope, keys_of, offer
from test_two_nodes import connect_by_invitation, referral_body

from node.storage import store
from protocol.wire import INBOX_PATH, MEDIA_TYPE_JOSE_JSON

SIZE = "24m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "small-disk"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a {SIZE} tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """Take all but ``leave`` bytes of the filesystem's free space, in a file of its own."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 512, 1):  # big pieces, then the last bytes
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        os.ftruncate(fd, os.fstat(fd).st_size - leave)
    finally:
        os.close(fd)
    return filler


async def test_a_full_disk_refuses_envelopes_retryably_and_resumes_alone(node_factory, small_disk):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker", data_dir=small_disk / "Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    bkeys = keys_of(broker)
    bodies = {f"env_full{i:03d}": envelope(agency, broker.node.me, bkeys, offer(cid, f"rfl_full{i:03d}"),
                                            envelope_id=f"env_full{i:03d}") for i in range(300)}
    receipts: dict[str, bytes] = {}
    refused: list[str] = []
    filler = fill(small_disk, leave=4 << 20)  # room for some dozens, then none
    async with aiohttp.ClientSession() as session:
        async def send(envelope_id: str) -> int:
            async with session.post(broker.url + INBOX_PATH, data=bodies[envelope_id],
                                    headers={"Content-Type": MEDIA_TYPE_JOSE_JSON}) as r:
                answer = await r.read()
                if r.status == 200:
                    receipts[envelope_id] = answer
                else:
                    # Retryable, with no receipt: the sender keeps the envelope and comes back.
                    error = json.loads(answer)
                    assert (r.status, error["error"]["code"]) == (503, "unavailable"), answer
                    assert int(r.headers["Retry-After"]) > 0 and "receipt" not in error
                    refused.append(envelope_id)
                return r.status

        for envelope_id in bodies:
            await send(envelope_id)
        assert refused, "the disk never filled up"
        assert len(receipts) >= 10, "the disk was full before the stream"
        async with session.get(broker.url + "/readyz") as r:
            assert (r.status, (await r.json())["checks"]["database"]) == (503, "full")
        # The admin API still reads, and refuses writes as the inbox does.
        await broker.api("GET", "/api/v1/node")
        refused_write = await broker.api("POST", "/api/v1/contacts", {"first_name": "Al", "last_name": "Fuller"},
                                         expect=503)
        assert refused_write["error"]["code"] == "unavailable"
        # Our own node, sending to a peer with a full disk, keeps the referral to try again.
        sent = await agency.api("POST", "/api/v1/referrals", referral_body(cid, referral_id="rfl_later"))

        async def tried() -> bool:
            items = (await agency.api("GET", "/api/v1/outbox?state=pending"))["outbox"]
            return any(i["last_error"] == "HTTP 503" for i in items)

        await wait_for(tried, within_s=20)

        # Room again: the node takes what it refused, and answers what it took with the
        # same receipt, all without a restart.
        filler.unlink()
        async with session.get(broker.url + "/readyz") as r:
            assert r.status == 200
        for envelope_id in refused:
            assert await send(envelope_id) == 200
        first = dict(receipts)
        for envelope_id in list(first)[:20]:
            assert await send(envelope_id) == 200 and receipts[envelope_id] == first[envelope_id]

    def stored(conn):  # type: ignore[no-untyped-def]
        return {i: store.get_inbox(conn, agency.node.me, i) for i in bodies}

    rows = await broker.node.db.read(stored)
    assert all(row is not None and row.receipt == receipts[i] for i, row in rows.items())
    assert await broker.node.db.read(store.count_inbox) >= len(bodies)
    referrals = (await broker.api("GET", "/api/v1/referrals?side=receiver&limit=1000"))["referrals"]
    assert sorted(r["id"] for r in referrals if r["id"].startswith("rfl_full")) == sorted(
        f"rfl_full{i:03d}" for i in range(300))
    # Acknowledged means on disk: after a restart, every one is still there.
    await broker.stop()
    await broker.start()
    rows = await broker.node.db.read(stored)
    assert all(row is not None for row in rows.values())
    assert sent["referral"]["id"] == "rfl_later"
    await broker.close()  # before the disk goes
