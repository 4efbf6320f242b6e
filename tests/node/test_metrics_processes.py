"""``/metrics`` of a node with an inbox front: the counts of every process are added up
(prometheus-client's multiprocess mode), those of a front killed with SIGKILL included,
and the front's restart shows, in ``/metrics`` and in ``/readyz``."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from conftest import wait_for
from metrics_kit import metrics_token, parse, scrape, value
from procs import alive, child_pids, make_proc_node
from prometheus_client.multiprocess import MultiProcessCollector
from test_fronts import connect, discovery_keys
from test_inbox_refusals import envelope, offer

from protocol.wire import INBOX_PATH, MEDIA_TYPE_JOSE_JSON

pytestmark = pytest.mark.slow


def readyz(url: str) -> tuple[int, dict[str, str]]:
    import json

    try:
        with urllib.request.urlopen(url + "/readyz", timeout=10) as r:  # noqa: S310
            return r.status, json.loads(r.read())["checks"]
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["checks"]


def shared_folder(pid: int) -> Path:
    """Where a serving process counts (its PROMETHEUS_MULTIPROC_DIR)."""
    env = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
    return Path(env["PROMETHEUS_MULTIPROC_DIR"])


def inbox_accepted_in(files: list[str]) -> float:
    """Referral offers accepted, as counted in these processes' files alone."""
    return sum(s.value for m in MultiProcessCollector.merge(files) for s in m.samples
               if s.name == "refnode_inbox_envelopes_total" and s.labels.get("outcome") == "accepted"
               and s.labels.get("type") == "referral-offer")


async def test_counts_of_every_process_add_up_and_a_killed_front_shows(node_factory, tmp_path):
    broker = make_proc_node(tmp_path, "Broker", inbox_workers=1)
    broker.start()
    try:
        assert broker.proc is not None
        token = metrics_token(broker.config.data_dir)
        samples = parse((await asyncio.to_thread(scrape, broker.url, token))[1])
        assert value(samples, "refnode_inbox_fronts", state="configured") == 1
        assert value(samples, "refnode_inbox_fronts", state="connected") == 1
        assert readyz(broker.url) == (200, {"database": "ok", "schema": "ok", "fronts": "ok"})

        agency = await node_factory("Agency")
        cid = await connect(agency, broker)
        bkeys = await discovery_keys(broker)
        broker_id = (await asyncio.to_thread(broker.api, "GET", "/api/v1/node"))[1]["node_id"]
        # 30 envelopes, each on a connection of its own: the kernel spreads them over the
        # node process and its front, and each counts what it takes in.
        for i in range(30):
            body = envelope(agency, broker_id, bkeys, offer(cid, f"rfl_p{i}"), envelope_id=f"env_p{i}")
            async with aiohttp.ClientSession() as session:
                async with session.post(broker.url + INBOX_PATH, data=body,
                                        headers={"Content-Type": MEDIA_TYPE_JOSE_JSON}) as r:
                    assert r.status == 200, await r.text()
        front = child_pids(broker.proc.pid)[0]
        folder = shared_folder(front)
        front_files = [str(p) for p in folder.glob(f"*_{front}.db")]
        node_files = [str(p) for p in folder.glob(f"*_{broker.proc.pid}.db")]
        by_front, by_node = inbox_accepted_in(front_files), inbox_accepted_in(node_files)
        assert by_front > 0 and by_node > 0 and by_front + by_node == 30, (by_front, by_node)
        samples = parse((await asyncio.to_thread(scrape, broker.url, token))[1])
        offers = dict(type="referral-offer", outcome="accepted", code="none")
        assert value(samples, "refnode_inbox_envelopes_total", **offers) == 30
        inbox_requests = value(samples, "refnode_http_request_seconds_count", group="inbox", status="2xx")
        assert inbox_requests >= 30 + 1  # the offers and the handshake's connection-confirm

        # The front is killed: it is restarted, /readyz says not ready meanwhile, and what it
        # counted stays in the totals.
        os.kill(front, signal.SIGKILL)
        seen_not_ready, deadline = None, time.monotonic() + 20
        while time.monotonic() < deadline:
            status, checks = await asyncio.to_thread(readyz, broker.url)
            if status == 503:
                seen_not_ready = checks
            elif seen_not_ready is not None:
                break
            await asyncio.sleep(0.02)
        assert seen_not_ready == {"database": "ok", "schema": "ok", "fronts": "0 of 1 connected"}
        assert readyz(broker.url)[0] == 200
        assert not alive(front)

        async def restarted() -> bool:
            s = parse((await asyncio.to_thread(scrape, broker.url, token))[1])
            return (value(s, "refnode_inbox_front_restarts_total") == 1
                    and value(s, "refnode_inbox_fronts", state="connected") == 1)

        await wait_for(restarted, within_s=20)
        samples = parse((await asyncio.to_thread(scrape, broker.url, token))[1])
        assert value(samples, "refnode_inbox_envelopes_total", **offers) == 30
        assert value(samples, "refnode_http_request_seconds_count", group="inbox", status="2xx") >= inbox_requests
    finally:
        broker.stop()
    # The folder of counts goes with the node.
    assert not folder.exists()
