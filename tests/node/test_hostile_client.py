"""Hostile clients against a real node: headers and bodies that never finish, and more
connections than the node has files for. Real ``refnode serve`` processes (or, for the
cap's choices, the node's application served in-process the way ``serve`` serves it),
real sockets on 127.0.0.1, and the kernel's own file limit (``RLIMIT_NOFILE``, set in
the child)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import resource
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from procs import ProcNode, make_proc_node

from node.base.config import Config
from node.base.logs import configure_logging
from node.base.repeats import quiet_loop_errors
from node.http.app import create_app
from node.http.connections import (
    RESERVED_FILES,
    NodeRunner,
    cap_for,
    listening_sockets,
    serve_socket,
)
from protocol.wire import DISCOVERY_PATH, INBOX_PATH, MEDIA_TYPE_JOSE_JSON

HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
#: Scheduling slack on a busy test machine, on top of a timeout.
SLACK_S = 1.0


@dataclass
class Seen:
    """What one client saw: when the first byte of an answer came, when the node closed
    the connection (seconds from connecting; None: not within the test's patience) and
    the bytes it answered."""

    answered_s: float | None
    closed_s: float | None
    answer: bytes

    @property
    def status(self) -> int | None:
        match = re.match(rb"HTTP/1\.1 (\d{3}) ", self.answer)
        return int(match[1]) if match else None

    def json(self) -> dict[str, object]:
        body = self.answer.split(b"\r\n\r\n", 1)[1]
        return dict(json.loads(body))


async def dribble(node: ProcNode, head: bytes, drop: bytes, *, every_s: float, patience_s: float) -> Seen:
    """Connect, send ``head``, then one ``drop`` every ``every_s`` seconds (a header or
    body that never ends) until the node closes the connection, reading what it answers."""
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head)

    async def keep_sending() -> None:
        while not writer.is_closing() and not reader.at_eof():
            await asyncio.sleep(every_s)
            writer.write(drop)

    sender = asyncio.create_task(keep_sending())
    answer = bytearray()
    answered_s = closed_s = None
    try:
        async with asyncio.timeout(patience_s):
            while True:
                data = await reader.read(65536)
                if not data:
                    closed_s = loop.time() - start
                    break
                answered_s = answered_s if answered_s is not None else loop.time() - start
                answer += data
    except (ConnectionResetError, BrokenPipeError):
        closed_s = loop.time() - start
    except TimeoutError:
        pass
    finally:
        sender.cancel()
        writer.close()
    return Seen(answered_s, closed_s, bytes(answer))


def started(tmp_path: Path, *, fronts: int = 0, nofile: tuple[int, int] | None = None, **env: str) -> ProcNode:
    """A running ``refnode serve`` process with the given ``REFNODE_*`` settings."""
    node = make_proc_node(tmp_path, "Broker", inbox_workers=fronts)
    node.env.update({f"REFNODE_{k.upper()}": v for k, v in {"log_level": "info", **env}.items()})
    node.nofile = nofile
    node.start()
    return node


# -- slow headers ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fronts", [0, 1])
async def test_slow_and_silent_headers_are_cut_off_within_the_header_timeout(tmp_path, fronts):
    node = started(tmp_path, fronts=fronts, header_timeout_s=str(HEADER_TIMEOUT_S))
    try:
        # Several of each, so that with a front both processes get some.
        silent = [dribble(node, b"", b"", every_s=0.25, patience_s=HEADER_TIMEOUT_S * 3) for _ in range(4)]
        slow = [dribble(node, b"GET " + DISCOVERY_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n", b"X",
                        every_s=0.25, patience_s=HEADER_TIMEOUT_S * 3) for _ in range(4)]
        seen = await asyncio.gather(*silent, *slow)
    finally:
        node.stop()
    for one in seen:
        assert one.answer == b"", one  # no request, no answer
        assert one.closed_s is not None, "a header that never ended was still held"
        assert HEADER_TIMEOUT_S - 0.2 <= one.closed_s <= HEADER_TIMEOUT_S + SLACK_S, one


@pytest.mark.slow
async def test_an_idle_kept_alive_connection_is_closed_after_the_header_timeout(tmp_path):
    node = started(tmp_path, header_timeout_s=str(HEADER_TIMEOUT_S))
    try:
        request = b"GET " + DISCOVERY_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        seen = await dribble(node, request, b"", every_s=0.25, patience_s=HEADER_TIMEOUT_S * 3)
    finally:
        node.stop()
    assert seen.status == 200 and seen.answered_s is not None and seen.answered_s < 0.5, seen
    assert seen.closed_s is not None, "an idle connection was kept"
    assert HEADER_TIMEOUT_S - 0.2 <= seen.closed_s - seen.answered_s <= HEADER_TIMEOUT_S + SLACK_S, seen


# -- slow bodies ---------------------------------------------------------------------------


def chunked(method: str, path: str, content_type: str = MEDIA_TYPE_JOSE_JSON) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()


@pytest.mark.slow
@pytest.mark.parametrize("fronts", [0, 1])
async def test_an_inbox_body_that_never_ends_is_answered_408_within_the_body_timeout(tmp_path, fronts):
    node = started(tmp_path, fronts=fronts, body_timeout_s=str(BODY_TIMEOUT_S))
    try:
        seen = await asyncio.gather(*(
            dribble(node, chunked("POST", INBOX_PATH), b"1\r\n{\r\n", every_s=0.2, patience_s=BODY_TIMEOUT_S * 4)
            for _ in range(6)
        ))
    finally:
        node.stop()
    for one in seen:
        assert one.status == 408, one
        assert one.json()["error"]["code"] == "timeout", one  # type: ignore[index]
        assert one.answered_s is not None and BODY_TIMEOUT_S - 0.2 <= one.answered_s <= BODY_TIMEOUT_S + SLACK_S, one
        assert b"\r\nConnection: close\r\n" in one.answer.split(b"\r\n\r\n", 1)[0] + b"\r\n", one
        # The rest of the body is not waited for: the connection goes with the answer.
        assert one.closed_s is not None and one.closed_s - one.answered_s <= SLACK_S, one


@pytest.mark.slow
async def test_a_body_that_never_ends_on_a_route_that_ignores_it_is_cut_off(tmp_path):
    """A route that does not read the body answers at once; the node then reads and
    drops what follows for a while (so the client can read the answer), but not for ever."""
    node = started(tmp_path, body_timeout_s=str(BODY_TIMEOUT_S))
    try:
        seen = await dribble(node, chunked("GET", DISCOVERY_PATH), b"1\r\nx\r\n", every_s=0.2,
                             patience_s=BODY_TIMEOUT_S * 4)
    finally:
        node.stop()
    assert seen.status == 200 and seen.answered_s is not None and seen.answered_s < 0.5, seen
    assert seen.closed_s is not None, "a body that never ended was still read"
    assert seen.closed_s <= BODY_TIMEOUT_S + SLACK_S, seen


# -- more connections than files ----------------------------------------------------------


SLOW_CONNECTIONS = 1100
FILE_LIMIT = 1024


def raise_own_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"this test opens {needed} sockets; the hard file limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)) if hard != resource.RLIM_INFINITY
                                                    else needed, hard))


def timed_get(node: ProcNode, path: str = DISCOVERY_PATH, timeout_s: float = 10.0) -> tuple[float, int | None]:
    """One normal request on a new connection: how long until the whole answer, and its status."""
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    start = time.monotonic()
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            answer = bytearray()
            while chunk := sock.recv(65536):
                answer += chunk
    except (TimeoutError, ConnectionError):
        return time.monotonic() - start, None
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    return time.monotonic() - start, int(match[1]) if match else None


def node_files(node: ProcNode) -> int:
    assert node.proc is not None
    return len(list(Path(f"/proc/{node.proc.pid}/fd").iterdir()))


def node_rss_kib(node: ProcNode) -> int:
    assert node.proc is not None
    status = Path(f"/proc/{node.proc.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1])  # type: ignore[index]


@pytest.mark.slow
async def test_1100_slow_connections_under_a_1024_file_limit_leave_the_node_answering(tmp_path):
    raise_own_file_limit(SLOW_CONNECTIONS + 256)
    # The header timeout is long, so that only the connection cap can be what helps.
    node = started(tmp_path, nofile=(FILE_LIMIT, FILE_LIMIT), header_timeout_s="120")
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    clients: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        rss_before = node_rss_kib(node)

        async def slow_client() -> None:
            try:
                async with asyncio.timeout(5):
                    reader, writer = await asyncio.open_connection(host, int(port))
            except (TimeoutError, OSError):
                return  # the node no longer takes connections: the request below shows it
            writer.write(b"GET " + DISCOVERY_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            clients.append((reader, writer))

        await asyncio.gather(*(slow_client() for _ in range(SLOW_CONNECTIONS)))
        await asyncio.sleep(0.5)  # let the node take in what the kernel queued
        times = []
        for _ in range(5):
            took, status = await asyncio.to_thread(timed_get, node)
            assert status == 200, f"no answer within {took:.1f} s with {SLOW_CONNECTIONS} slow connections open"
            times.append(took)
        files, rss_after = node_files(node), node_rss_kib(node)
        closed_by_node = sum(1 for reader, _ in clients if reader.at_eof())
    finally:
        for _, writer in clients:
            writer.close()
        node.stop()
    print(f"answers in {', '.join(f'{t * 1000:.0f} ms' for t in times)}; node files {files}; "
          f"RSS {rss_before} KiB -> {rss_after} KiB; {len(clients)} connected, {closed_by_node} closed by the node")
    assert max(times) < 1.0, times
    log = node.log_path.read_text()
    cap = re.search(r'"connection cap[^"]*".*?"cap": (\d+)', log) or re.search(r'"cap": (\d+).*"connection cap', log)
    assert cap is not None, log[-2000:]
    assert int(cap[1]) < FILE_LIMIT, cap[0]
    assert files <= FILE_LIMIT
    # Eviction kept the node under its limit: the kernel never said "no more files".
    assert log.count("out of system resource") <= 1, log.count("out of system resource")


@pytest.mark.slow
def test_the_node_raises_its_soft_file_limit_where_the_hard_limit_allows(tmp_path):
    node = started(tmp_path, nofile=(256, 4096), max_connections="1000")
    try:
        assert node.proc is not None
        limits = Path(f"/proc/{node.proc.pid}/limits").read_text()
    finally:
        node.stop()
    soft, hard = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits).groups()  # type: ignore[union-attr]
    assert (int(soft), int(hard)) == (1000 + RESERVED_FILES, 4096)
    line = next(json.loads(x) for x in node.log_path.read_text().splitlines() if '"connection cap"' in x)
    assert (line["cap"], line["open_files_limit"], line["level"]) == (1000, 1000 + RESERVED_FILES, "info")


def test_the_cap_leaves_room_for_the_node_s_own_files():
    assert cap_for(1000, None) == 1000  # no limit known
    assert cap_for(1000, 20_000) == 1000
    assert cap_for(1000, 1024) == 1024 - RESERVED_FILES < 1000
    assert cap_for(1000, 100) == 50  # a very low limit: the reserve is at most half


# -- the cap's choices, in-process -------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(config: Config, cap: int) -> AsyncIterator[NodeRunner]:
    """The node's application served as ``refnode serve`` serves it, with ``cap``."""
    runner = NodeRunner(create_app(config), config, cap=cap)
    await runner.setup()
    try:
        await serve_socket(runner, listening_sockets(config.host, config.port)[0])
        yield runner
    finally:
        await runner.cleanup()


async def connect(config: Config, first: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(config.host, config.port)
    writer.write(first)
    await writer.drain()
    await asyncio.sleep(0.05)  # in this order at the node
    return reader, writer


async def closed(reader: asyncio.StreamReader, within_s: float = 0.5) -> bool:
    """Whether the node closes this connection (after whatever it answers) within ``within_s``."""
    try:
        async with asyncio.timeout(within_s):
            while await reader.read(65536):
                pass
            return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


SLOW_HEAD = b"GET " + DISCOVERY_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Slow: "
SLOW_BODY = chunked("POST", INBOX_PATH) + b"1\r\n{\r\n"
GET = b"GET " + DISCOVERY_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"


async def test_at_the_cap_the_oldest_connection_with_no_request_in_progress_makes_room(node_factory):
    broker = await node_factory("Broker", start=False, body_timeout_s=30, header_timeout_s=30)
    async with serving(broker.config, cap=4) as runner:
        busy = await connect(broker.config, SLOW_BODY)  # the oldest, in the middle of a request
        slow = [await connect(broker.config, SLOW_HEAD) for _ in range(3)]
        newcomer = await connect(broker.config, GET)
        answer = await asyncio.wait_for(newcomer[0].readuntil(b"\r\n\r\n"), 2)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        # The oldest slow head went; the connection with a request in progress stayed.
        assert await closed(slow[0][0])
        assert not any([await closed(c[0], 0.2) for c in (busy, *slow[1:])])
        # The newcomer, now idle between requests, is the newest: the next slow head goes.
        second = await connect(broker.config, GET)
        assert (await asyncio.wait_for(second[0].readuntil(b"\r\n\r\n"), 2)).startswith(b"HTTP/1.1 200 ")
        assert await closed(slow[1][0])
        assert not any([await closed(c[0], 0.2) for c in (busy, slow[2], newcomer)])
        assert (runner.capped.evicted, runner.capped.refused, runner.capped.open_connections) == (2, 0, 4)
        for _, writer in (busy, *slow, newcomer, second):
            writer.close()


async def test_at_the_cap_with_every_connection_busy_a_newcomer_is_answered_503(node_factory):
    broker = await node_factory("Broker", start=False, body_timeout_s=30)
    async with serving(broker.config, cap=2) as runner:
        busy = [await connect(broker.config, SLOW_BODY) for _ in range(2)]
        reader, writer = await connect(broker.config, b"")
        answer = await asyncio.wait_for(reader.read(), 2)
        head, body = answer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 503 ") and b"\r\nRetry-After: 5" in head, head
        assert json.loads(body)["error"]["code"] == "unavailable"
        assert not any([await closed(c[0], 0.2) for c in busy])
        assert (runner.capped.evicted, runner.capped.refused) == (0, 1)
        for _, w in (*busy, (reader, writer)):
            w.close()


# -- accept errors -----------------------------------------------------------------------


async def test_repeated_loop_errors_are_logged_once_then_counted_once_per_interval():
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    loop = asyncio.get_running_loop()
    before = loop.get_exception_handler()
    quiet_loop_errors(loop, interval_s=0.5)
    accept = {"message": "socket.accept() out of system resource", "exception": OSError(24, "Too many open files")}
    try:
        for _ in range(5000):  # what one flood of failed accepts reports within a second
            loop.call_exception_handler(accept)
        loop.call_exception_handler({"message": "something else"})
        await asyncio.sleep(0.75)  # the first interval ended with 4,999 held back
        for _ in range(10):
            loop.call_exception_handler(accept)
        await asyncio.sleep(0.5)  # the second ended with 10
        await asyncio.sleep(0.5)  # the third with none: the next is news again
        loop.call_exception_handler(accept)
    finally:
        loop.set_exception_handler(before)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    full = [line["event"].split("\n")[0] for line in lines if line["logger"] == "asyncio"]
    assert full == ["socket.accept() out of system resource", "something else", "socket.accept() out of system resource"]
    summaries = [line for line in lines if line["event"] == "event loop error repeated"]
    assert [(s["what"], s["count"]) for s in summaries] == [
        ("socket.accept() out of system resource (OSError)", 4999),
        ("socket.accept() out of system resource (OSError)", 10),
    ]


ACCEPTING_SERVER = textwrap.dedent("""
    import asyncio, resource, sys
    from node.base.logs import configure_logging
    from node.base.repeats import quiet_loop_errors

    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    configure_logging("json", "info")

    async def main():
        loop = asyncio.get_running_loop()
        quiet_loop_errors(loop, interval_s=1.0)
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(3.5)

    asyncio.run(main())
""")


@pytest.mark.slow
def test_a_process_out_of_files_logs_its_failed_accepts_a_few_lines_at_a_time(tmp_path):
    """asyncio's own server under a real file limit of 64: every accept fails, thousands
    of times a second, for 3.5 s."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", ACCEPTING_SERVER], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
    _, err = proc.communicate(timeout=30)
    for client in clients:
        client.close()
    lines = [json.loads(line) for line in err.splitlines()]
    failed = [line for line in lines if line["event"].startswith("socket.accept() out of system resource")]
    summaries = [line for line in lines if line["event"] == "event loop error repeated"]
    assert len(failed) == 1, len(failed)
    assert 2 <= len(summaries) <= 4 and sum(s["count"] for s in summaries) > 100, summaries


@pytest.mark.slow
@pytest.mark.parametrize("fronts", [0, 1])
def test_a_9kb_url_with_an_email_in_it_leaves_no_trace_of_it_in_the_log(tmp_path, fronts):
    """aiohttp refuses a request line over 8,190 bytes itself, and its error quotes the
    URL's start: the log keeps neither the query nor the exception's message."""
    node = started(tmp_path, fronts=fronts)
    host, port = node.config.host, node.config.port
    try:
        for path in (b"/api/v1/contacts?q=someone%40example.com&pad=", b"/refnode/v1/inbox?who=someone@example.com&x="):
            with socket.create_connection((host, port), timeout=10) as sock:
                sock.sendall(b"GET " + path + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
        time.sleep(0.5)  # the error is logged as the connection closes
    finally:
        node.stop()
    log = node.log_path.read_text()
    assert "Error handling request" in log  # the event is there...
    assert "someone" not in log and "example.com" not in log  # ...and the client's data is not


@pytest.mark.slow
def test_guessing_tokens_gets_429s_and_the_right_token_still_works_elsewhere(tmp_path):
    """A real process: wrong bearer tokens past the limit are answered 429 with Retry-After
    before any token is looked up (tests/node/test_guessing.py covers the rest)."""
    node = started(tmp_path, auth_failures_per_min="10")
    statuses = []
    try:
        for n in range(40):
            request = urllib.request.Request(node.url + "/api/v1/users", headers={
                "Authorization": f"Bearer rnt_guess{n:04d}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                    statuses.append((answer.status, None))
            except urllib.error.HTTPError as refused:
                statuses.append((refused.code, refused.headers.get("Retry-After")))
    finally:
        node.stop()
    assert [s for s, _ in statuses[:10]] == [401] * 10
    assert all(s == 429 and retry and int(retry) >= 1 for s, retry in statuses[10:])


@pytest.mark.slow
@pytest.mark.parametrize(("path", "content_type"), [("/api/v1/contacts", "application/json"),
                                                    ("/api/v1/import/contacts", "text/csv")])
async def test_an_admin_api_body_that_never_ends_is_answered_408_within_the_body_timeout(tmp_path, path, content_type):
    """The admin API's JSON bodies, and each piece of a streamed CSV upload, must come within
    body_timeout_s: an authenticated client cannot hold a connection open with a trickle."""
    node = started(tmp_path, body_timeout_s=str(BODY_TIMEOUT_S))
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {node.token}\r\n"
            f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    first = b"first_name\r\n" if content_type == "text/csv" else b"{"
    try:
        # A first piece, then nothing: the next piece never comes.
        seen = await dribble(node, head + f"{len(first):x}\r\n".encode() + first + b"\r\n", b"",
                             every_s=0.2, patience_s=BODY_TIMEOUT_S * 4)
    finally:
        node.stop()
    assert seen.status == 408, seen
    assert seen.json()["error"]["code"] == "timeout", seen  # type: ignore[index]
    assert seen.answered_s is not None and seen.answered_s <= BODY_TIMEOUT_S + SLACK_S, seen
