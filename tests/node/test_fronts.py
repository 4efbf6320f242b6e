"""A node with inbox fronts (``inbox_workers`` > 0) answers exactly as one process does:
the same receipts, the same refusals, the same admin API; and its fronts live and die
with it.

The broker is a real ``refnode serve`` process with two fronts; the agency and the
outsider are in-process nodes. Envelopes are sealed with their real keys and POSTed over
real HTTP to the broker's public port, where the kernel hands each connection to the node
process or to one of its fronts."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import make_config, wait_for
from procs import ProcNode, alive, child_pids, make_proc_node
from test_inbox_refusals import envelope, offer
from test_two_nodes import referral_body

from node.cli.setup import init_node
from protocol.discovery import verify_discovery
from protocol.receipts import verify_receipt
from protocol.wire import DISCOVERY_PATH, INBOX_PATH, MEDIA_TYPE_JOSE_JSON

pytestmark = pytest.mark.slow

FRONTS = 2


async def call(node: ProcNode, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return await asyncio.to_thread(node.api, method, path, body)


async def post(url: str, body: bytes, content_type: str = MEDIA_TYPE_JOSE_JSON) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url + INBOX_PATH, data=body, headers={"Content-Type": content_type}) as r:
            return r.status, json.loads(await r.read())


async def discovery_keys(node: ProcNode) -> Any:
    async with aiohttp.ClientSession() as session:
        async with session.get(node.url + DISCOVERY_PATH) as r:
            return verify_discovery(await r.read(), expected_node_id=None)[1]


def fronts_log(node: ProcNode) -> list[dict[str, int]]:
    """What each front said of its envelopes when it stopped."""
    return [json.loads(line) for line in node.log_path.read_text().splitlines() if '"inbox front stopped"' in line]


async def connect(agency: Any, broker: ProcNode) -> str:
    status, invite = await call(broker, "POST", "/api/v1/invitations", {"name": "Agency", "direction": "receive"})
    assert status == 201, invite
    result = await agency.api("POST", "/api/v1/connections",
                              {"referral_url": invite["referral_url"], "referral_key": invite["referral_key"]})
    cid = result["connection"]["id"]

    async def both_active() -> bool:
        mine = (await agency.api("GET", f"/api/v1/connections/{cid}"))["connection"]["state"]
        status, theirs = await call(broker, "GET", f"/api/v1/connections/{cid}")
        return mine == "active" and status == 200 and theirs["connection"]["state"] == "active"

    await wait_for(both_active, within_s=30)
    return cid


async def test_a_node_with_fronts_answers_as_one_process_does(node_factory, tmp_path):
    broker = make_proc_node(tmp_path, "Broker", inbox_workers=FRONTS)
    broker.log_path.touch()
    broker.env["REFNODE_LOG_LEVEL"] = "info"
    broker.start()
    try:
        assert len(child_pids(broker.proc.pid)) == FRONTS  # type: ignore[union-attr]
        agency = await node_factory("Agency")
        outsider = await node_factory("Outsider")
        # The handshake goes through the fronts to the node process (admin API and inbox).
        cid = await connect(agency, broker)
        info = (await call(broker, "GET", "/api/v1/node"))[1]
        broker_id = info["node_id"]
        assert info["inbox_fronts"] == {"configured": FRONTS, "connected": FRONTS}
        bkeys = await discovery_keys(broker)

        # A referral through the agency's API: delivered, with a receipt that verifies.
        sent = await agency.api("POST", "/api/v1/referrals", referral_body(cid), expect=202)

        async def delivered() -> bool:
            r = await agency.api("GET", f"/api/v1/referrals/{sent['referral']['local_id']}")
            return r["referral"]["state"] == "delivered"

        await wait_for(delivered, within_s=30)
        check = await agency.api("POST", "/api/v1/receipts/verify")
        assert check["invalid"] == [] and check["checked"] >= 2

        # An envelope POSTed directly: accepted, and the same bytes again get the same receipt.
        good = envelope(agency, broker_id, bkeys, offer(cid, "rfl_direct"), envelope_id="env_direct")
        status, first = await post(broker.url, good)
        assert status == 200, first
        receipt = verify_receipt(json.dumps(first).encode(), keys=bkeys, envelope_id="env_direct")
        assert receipt.disposition.value == "accepted"
        status, again = await post(broker.url, good)
        assert (status, again) == (200, first)
        # The same id with other bytes is a replay.
        other = envelope(agency, broker_id, bkeys, offer(cid, "rfl_other"), envelope_id="env_direct")
        status, body = await post(broker.url, other)
        assert (status, body["error"]["code"]) == (409, "replayed")

        # Every refusal is the node process's, with its spec code.
        data = json.loads(good)
        data["signature"] = ("A" if data["signature"][0] != "A" else "B") + data["signature"][1:]
        refusals = [
            (json.dumps(data).encode(), MEDIA_TYPE_JOSE_JSON, 401, "bad_signature"),
            (envelope(agency, broker_id, bkeys, offer(cid, "rfl_old"), envelope_id="env_old", age_s=8 * 86400),
             MEDIA_TYPE_JOSE_JSON, 400, "expired"),
            (envelope(outsider, broker_id, bkeys, offer(cid, "rfl_x"), envelope_id="env_stranger"),
             MEDIA_TYPE_JOSE_JSON, 403, "unknown_sender"),
            (b"{" + b" " * (1_048_576 + 10) + b"}", MEDIA_TYPE_JOSE_JSON, 413, "too_large"),
            (b"not json", MEDIA_TYPE_JOSE_JSON, 400, "malformed"),
            (good, "application/json", 400, "malformed"),
        ]
        for raw, content_type, want_status, want_code in refusals:
            status, body = await post(broker.url, raw, content_type)
            assert (status, body["error"]["code"]) == (want_status, want_code), body
        wrong = envelope(agency, outsider.node.me, verify_discovery(outsider.node.discovery, expected_node_id=None)[1], offer(cid),
                         envelope_id="env_wrong")
        status, body = await post(broker.url, wrong)
        assert (status, body["error"]["code"]) == (400, "wrong_recipient")
        rejected = verify_receipt(body["receipt"].encode(), keys=bkeys, envelope_id="env_wrong")
        assert rejected.disposition.value == "rejected"

        # The admin API through a front: a CSV download keeps its headers; a bad token is the
        # node process's 401; a second Authorization header does not override the first.
        async with aiohttp.ClientSession() as session:
            auth = {"Authorization": f"Bearer {broker.token}"}
            async with session.get(broker.url + "/api/v1/export/deals.csv", headers=auth) as r:
                assert r.status == 200 and r.content_type == "text/csv"
                assert r.headers["Content-Disposition"].startswith("attachment; filename=")
                assert b"Purchase at 12 Harbour St" in await r.read()
            async with session.get(broker.url + "/api/v1/node", headers={"Authorization": "Bearer nope"}) as r:
                assert r.status == 401 and (await r.json())["error"]["code"]
            twice = [("Authorization", "Bearer nope"), ("Authorization", f"Bearer {broker.token}")]
            async with session.get(broker.url + "/api/v1/node", headers=twice) as r:
                assert r.status == 401

        # More referrals, each on a new connection: the kernel spreads them over the node
        # process and its fronts, and each process takes in its share.
        many = [f"rfl_many{i}" for i in range(24)]
        for referral_id in many:
            raw = envelope(agency, broker_id, bkeys, offer(cid, referral_id), envelope_id=f"env_{referral_id}")
            status, body = await post(broker.url, raw)
            assert status == 200, body

        # The same envelope on 12 connections at once, and the same referral in 12 other
        # envelopes at once: whichever processes take them, they write in turns, so one
        # filing each, and every copy gets the one receipt or a duplicate's.
        same = envelope(agency, broker_id, bkeys, offer(cid, "rfl_race"), envelope_id="env_race")
        answers = await asyncio.gather(*(post(broker.url, same) for _ in range(12)))
        assert {status for status, _ in answers} == {200}
        assert len({json.dumps(body, sort_keys=True) for _, body in answers}) == 1
        copies = [envelope(agency, broker_id, bkeys, offer(cid, "rfl_twin"), envelope_id=f"env_twin{i}")
                  for i in range(12)]
        answers = await asyncio.gather(*(post(broker.url, raw) for raw in copies))
        dispositions = sorted(
            verify_receipt(json.dumps(body).encode(), keys=bkeys, envelope_id=f"env_twin{i}").disposition.value
            for i, (status, body) in enumerate(answers)
        )
        assert dispositions == ["accepted"] + ["duplicate"] * 11, dispositions

        # Exactly the accepted referrals were filed, each as a deal, once.
        status, received = await call(broker, "GET", "/api/v1/referrals?side=receiver")
        assert sorted(r["id"] for r in received["referrals"]) == sorted(
            [sent["referral"]["id"], "rfl_direct", *many, "rfl_race", "rfl_twin"])
        assert all(r["deal_id"] for r in received["referrals"])
        status, deals = await call(broker, "GET", "/api/v1/deals?limit=100")
        assert status == 200 and len(deals["deals"]) == len(received["referrals"])

        # Keys change on both sides; the fronts follow. The broker rotates its signing key:
        # the next receipt (signed by a front) carries the new one.
        status, rotated = await call(broker, "POST", "/api/v1/keys/rotate")
        assert status == 200, rotated

        async def agency_knows_new_key() -> bool:
            return rotated["signing_kid"] in agency.node.peers[broker_id].signing

        await wait_for(agency_knows_new_key, within_s=30)
        bkeys = await discovery_keys(broker)
        after = envelope(agency, broker_id, bkeys, offer(cid, "rfl_after"), envelope_id="env_after")
        status, body = await post(broker.url, after)
        assert status == 200, body
        assert json.loads(_header(body))["kid"] == rotated["signing_kid"]
        # The agency rotates: the broker learns it over the inbox and tells its fronts.
        new_agency_kid = (await agency.api("POST", "/api/v1/keys/rotate"))["signing_kid"]

        async def announced() -> bool:
            return (await agency.api("GET", "/api/v1/outbox?state=pending"))["outbox"] == []

        await wait_for(announced, within_s=30)  # the key-rotation message reached the broker
        latest = envelope(agency, broker_id, bkeys, offer(cid, "rfl_latest"), envelope_id="env_latest")
        assert json.loads(_header(json.loads(latest)))["kid"] == new_agency_kid
        status, body = await post(broker.url, latest)
        assert status == 200, body

        # Closed loop back through the broker's outbox, driven by the node process.
        local = next(r["local_id"] for r in received["referrals"] if r["id"] == sent["referral"]["id"])
        status, _ = await call(broker, "POST", f"/api/v1/referrals/{local}/status", {"status": "accepted"})
        assert status == 200

        async def accepted() -> bool:
            r = await agency.api("GET", f"/api/v1/referrals/{sent['referral']['local_id']}")
            return r["referral"]["state"] == "accepted"

        await wait_for(accepted, within_s=30)
    finally:
        broker.stop()
    said = fronts_log(broker)
    # Every front stopped cleanly, and the fronts took in referrals themselves.
    assert len(said) == FRONTS, said
    assert sum(front["took_in"] for front in said) >= 1, said


def _header(body: dict[str, Any]) -> str:
    import base64

    protected = body["protected"]
    return base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)).decode()


def test_fronts_are_restarted_and_die_with_their_node(tmp_path):
    broker = make_proc_node(tmp_path, "Broker", inbox_workers=FRONTS)
    broker.start()
    try:
        assert broker.proc is not None
        fronts = child_pids(broker.proc.pid)
        assert len(fronts) == FRONTS
        # A front that dies is replaced, and the node keeps answering.
        os.kill(fronts[0], signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = [p for p in child_pids(broker.proc.pid) if alive(p)]
            if len(now) == FRONTS and fronts[0] not in now:
                break
            time.sleep(0.1)
        replaced = [p for p in child_pids(broker.proc.pid) if alive(p)]
        assert len(replaced) == FRONTS and fronts[0] not in replaced
        for _ in range(20):  # connections land on either front
            assert broker.api("GET", "/api/v1/node")[0] == 200
        # The replacement runs before it has connected its link: wait for that, as the
        # status counts connected fronts.
        deadline = time.monotonic() + 20
        while broker.api("GET", "/api/v1/node")[1]["inbox_fronts"]["connected"] < FRONTS:
            assert time.monotonic() < deadline, "the replacement front never connected"
            time.sleep(0.1)
        info = subprocess.run([sys.executable, "-m", "node.cli", "--config", str(broker.config.config_path), "info"],
                              capture_output=True, text=True, timeout=30)
        assert info.returncode == 0 and re.search(rf"inbox fronts\W+{FRONTS} of {FRONTS} running", info.stdout), info
        # The node process is killed: its fronts go with it, and the port is free again.
        broker.kill9()
        deadline = time.monotonic() + 10
        while any(alive(p) for p in replaced) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(p) for p in replaced)
        broker.start()
        assert broker.api("GET", "/api/v1/node")[0] == 200
    finally:
        broker.stop()
    assert re.search(r"inbox front exited; starting another", broker.log_path.read_text())


def test_a_second_serve_of_the_same_folder_is_refused_before_it_listens(tmp_path):
    broker = make_proc_node(tmp_path, "Broker", inbox_workers=FRONTS)
    broker.start()
    try:
        second = subprocess.run(
            [sys.executable, "-m", "node.cli", "--config", str(broker.config.config_path), "--json", "serve"],
            capture_output=True, text=True, timeout=30, env={**os.environ, "REFNODE_INBOX_WORKERS": str(FRONTS)},
        )
        assert second.returncode == 1
        assert "another 'refnode serve' is running" in second.stdout + second.stderr
        # It took no share of the port: every request still reaches the running node.
        assert len(child_pids(broker.proc.pid)) == FRONTS  # type: ignore[union-attr]
        for _ in range(20):
            assert broker.api("GET", "/api/v1/node")[0] == 200
    finally:
        broker.stop()


def test_a_front_answers_expect_100_continue_as_one_process_does(tmp_path):
    """Clients such as curl ask before sending a body (``Expect: 100-continue``) and wait
    for the go-ahead: a front gives it, for its own route and for the ones it passes on, as
    the node process does for the connections the kernel hands it."""
    broker = make_proc_node(tmp_path, "Broker", inbox_workers=FRONTS)
    broker.start()
    try:
        host, port = broker.url.removeprefix("http://").split(":")
        for path in (INBOX_PATH, "/api/v1/invitations"):
            body = b'{"not": "an envelope"}'
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {MEDIA_TYPE_JOSE_JSON}\r\n"
                    f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode()
                )
                sock.settimeout(2)
                go_ahead = b"HTTP/1.1 100 Continue\r\n\r\n"
                answer = b""
                while len(answer) < len(go_ahead):
                    answer += sock.recv(64)
                assert answer.startswith(go_ahead), answer[:80]
                # The answer may follow at once (a 401 needs no body), or after the body.
                answer = answer[len(go_ahead):]
                sock.sendall(body)
                sock.settimeout(5)
                while b"\r\n\r\n" not in answer:
                    answer += sock.recv(4096)
                assert re.match(rb"HTTP/1\.1 (400|401) ", answer), answer[:80]
        # Any other expectation is refused, as by one process.
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(f"POST {INBOX_PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n"
                         "Expect: something-else\r\n\r\n".encode())
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += sock.recv(4096)
            while len(answer) < answer.index(b"\r\n\r\n") + 4 + len(b"Unknown Expect"):
                answer += sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 417 "), answer[:80]
            assert b"Unknown Expect: something-else" in answer  # aiohttp's own answer, as one process
        # The inbox is matched with encoded slashes left encoded, as the router does.
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(f"POST /refnode/v1%2Finbox HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n"
                         f"Content-Type: {MEDIA_TYPE_JOSE_JSON}\r\n\r\n{{}}".encode())
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 404 "), answer[:80]
    finally:
        broker.stop()


async def test_a_refused_sync_in_any_process_stops_every_process(node_factory, tmp_path):
    """The processes share one database: when a front's sync is refused, what it committed
    may not be on disk, and a later sync elsewhere (on a descriptor opened after the error)
    might not be told. The node process then refuses reads and writes too, tells every
    front, and tells any front that connects later."""
    from node.http.fronts import Fronts, Link, RunPaths
    from node.storage.disk import DiskFailure

    broker = await node_factory("Broker")
    node = broker.node
    fronts = Fronts(node, broker.config, RunPaths(tmp_path, tmp_path / "h.sock", tmp_path / "l.sock"), [])
    loop = asyncio.get_running_loop()

    async def front_link() -> tuple[Any, asyncio.Queue[tuple[Any, ...]], list[str]]:
        """A front's end of the link, once it said hello; and what it heard before "ready"."""
        heard: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        ours, theirs = socket.socketpair()
        await loop.connect_accepted_socket(lambda: Link(fronts._on_frame, fronts._on_lost), sock=ours)
        _, link = await loop.create_connection(lambda: Link(lambda _, f: heard.put_nowait(f), lambda _: None),
                                               sock=theirs)
        link.send("hello", 1, node.keys.signing.kid)
        before: list[str] = []
        while not before or before[-1] != "ready":
            before.append((await asyncio.wait_for(heard.get(), 5))[0])
        return link, heard, before

    failing, _, before = await front_link()
    assert before == ["peers", "ready"]
    other, other_heard, _ = await front_link()
    assert await node.db.read(lambda conn: 1) == 1
    failing.send("disk-failure", "injected: the disk refused the sync")
    frame = await asyncio.wait_for(other_heard.get(), 5)
    assert frame[0] == "disk-failure"
    assert node.db.failed
    with pytest.raises(DiskFailure):
        await node.db.read(lambda conn: 1)
    late, _, before = await front_link()
    assert before == ["disk-failure", "peers", "ready"]  # told before it may serve
    for link in (failing, other, late):
        link.transport.close()  # type: ignore[union-attr]


def test_a_front_that_keeps_dying_at_start_is_restarted_less_and_less_often(tmp_path):
    """A front that cannot start (here: keys the node process has loaded, but that are no
    longer private, so a new front refuses them) is restarted after a growing delay, not
    every half second. Meanwhile the node process takes the connections the kernel still
    hands the front's socket: none waits for a front that is not there."""
    broker = make_proc_node(tmp_path, "Broker", inbox_workers=1)
    broker.start()
    keys_dir = broker.config.keys_dir
    try:
        assert broker.proc is not None
        (front,) = child_pids(broker.proc.pid)
        keys_dir.chmod(0o755)  # a front started from now on exits at once
        os.kill(front, signal.SIGKILL)
        time.sleep(8)
        exits = [json.loads(line) for line in broker.log_path.read_text().splitlines()
                 if "inbox front exited; starting another" in line]
        # Delays of 0.5, 1, 2, 4 s after each exit (a fixed 0.5 s gave 7 exits here), on
        # top of however long a front takes to start and fail (seconds, on a busy machine).
        assert 2 <= len(exits) <= 5, exits
        assert [e["delay_s"] for e in exits] == [0.5, 1.0, 2.0, 4.0, 8.0][:len(exits)], exits
        for _ in range(20):  # each on a new connection: about half land on the front's socket
            assert broker.api("GET", "/api/v1/node")[0] == 200
    finally:
        keys_dir.chmod(0o700)
        broker.stop()


def test_a_front_whose_node_process_is_gone_exits_with_one_structured_line(tmp_path: Path) -> None:
    """A front started just as its node process was killed finds the link socket gone or
    refusing: it says so in one JSON line and exits, with no traceback in the log."""
    config = make_config(tmp_path, "Solo", log_level="info")
    init_node(config, admin_email="admin@solo.example", admin_name="Admin")
    refusing = tmp_path / "link.sock"  # a socket file nobody listens on: connection refused
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(refusing))
    for link in (refusing, tmp_path / "missing.sock"):
        with socket.socket() as public:
            public.bind(("127.0.0.1", 0))
            public.listen()
            result = subprocess.run(
                [sys.executable, "-m", "node.http.front", "--config", str(config.config_path),
                 "--fd", str(public.fileno()), "--http", str(tmp_path / "http.sock"), "--link", str(link)],
                pass_fds=[public.fileno()], capture_output=True, text=True, timeout=30,
                env={**os.environ, "REFNODE_LOG_FORMAT": "json"},
            )
        assert result.returncode == 1
        assert "Traceback" not in result.stdout + result.stderr
        (line,) = [json.loads(text) for text in result.stderr.splitlines() if text.strip()]
        assert line["event"] == "inbox front cannot reach its node process; exiting"
        assert line["error"] in ("ConnectionRefusedError", "FileNotFoundError")
