"""Guessing secrets is slowed down (issue 11, item 6).

Wrong admin-API tokens are counted per client address and per token prefix; wrong
invitation keys per client address, per requesting node and per invitation. Past the
limit the answer is ``429 rate_limited`` with ``Retry-After``, given before the secret is
looked at; the right secret works from elsewhere at once, and everywhere once the attack
has stopped. Real nodes on 127.0.0.1, guessers on other loopback addresses (127.0.0.2
and up), real HTTP; only the clock is fake.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aiohttp
import pytest
import structlog
from conftest import RunningNode, wait_for
from procs import make_proc_node
from test_inbox_refusals import envelope, keys_of

from node.base.clock import FakeClock
from node.base.ratelimit import FailureLimiter, retry_after
from node.base.tokens import TOKEN_PREFIX, token_prefix
from node.http.clients import FRONT_CLIENT_HEADER, grouped
from protocol.encoding import b64u_encode
from protocol.invitations import KEY_PREFIX, parse_referral
from protocol.messages import ConnectionRequest, InvitationProof, Person
from protocol.wire import INBOX_PATH, MEDIA_TYPE_JOSE_JSON, MessageType

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
GUESSER = "127.0.0.2"


# --- the limiter ---------------------------------------------------------------------------


def test_a_key_fails_limit_times_then_once_per_share_of_the_window_and_is_forgiven_after_it():
    clock = FakeClock(START)
    limiter = FailureLimiter("tests", limit=3, window_s=60, clock=clock)
    assert [limiter.charge(client="a") for _ in range(3)] == [0, 0, 0]
    assert limiter.charge(client="a") == pytest.approx(20)
    clock.advance(19.5)
    assert limiter.charge(client="a") == pytest.approx(0.5)
    clock.advance(0.5)
    assert limiter.charge(client="a") == 0  # one try earned back
    assert limiter.charge(client="a") == pytest.approx(20)
    clock.advance(60)
    assert [limiter.charge(client="a") for _ in range(3)] == [0, 0, 0]


def test_only_failures_count_and_refused_attempts_do_not_lengthen_the_wait():
    clock = FakeClock(START)
    limiter = FailureLimiter("tests", limit=2, window_s=60, clock=clock)
    for _ in range(50):  # right answers are taken back
        assert limiter.charge(client="a") == 0
        limiter.refund(client="a")
    assert [limiter.charge(client="a") for _ in range(2)] == [0, 0]
    for _ in range(100):
        assert limiter.charge(client="a") == pytest.approx(30)
    clock.advance(30)
    assert limiter.charge(client="a") == 0


def test_each_dimension_counts_apart_and_any_blocked_key_blocks():
    limiter = FailureLimiter("tests", limit=2, window_s=60, clock=FakeClock(START))
    assert [limiter.charge(client="a", invitation="x") for _ in range(2)] == [0, 0]
    assert limiter.charge(client="b", invitation="y") == 0
    assert limiter.charge(client="b", invitation="x") > 0  # x is blocked whoever asks
    assert limiter.charge(client="a", invitation=None) > 0  # None is left out; a is blocked
    assert limiter.charge(client=None, invitation="z") == 0


def test_memory_is_bounded_and_made_up_keys_cannot_push_out_the_addresses():
    limiter = FailureLimiter("tests", limit=1, window_s=60, clock=FakeClock(START), max_keys=100)
    limiter.charge(client="a")
    for n in range(1000):
        limiter.charge(prefix=f"p{n}")
    assert limiter.keys("prefix") == 100
    assert limiter.charge(client="a") > 0  # still held
    for n in range(100):
        limiter.charge(client=f"10.0.0.{n}")
    assert limiter.keys("client") == 100
    assert limiter.charge(client="a") == 0  # the oldest is forgotten first


def test_one_line_is_logged_when_a_key_gets_blocked_without_the_unlogged_values():
    clock = FakeClock(START)
    limiter = FailureLimiter("admin-api tokens", limit=2, window_s=60, clock=clock,
                             unlogged=frozenset({"prefix"}))
    with structlog.testing.capture_logs() as logs:
        for _ in range(10):
            limiter.charge(client="198.51.100.7", prefix="Zq9x")
        clock.advance(60)  # forgiven; a new run is logged again
        for _ in range(10):
            limiter.charge(client="198.51.100.7")
    lines = [e for e in logs if e["event"] == "guessing limited"]
    assert [(e["by"], e["who"], e["retry_after_s"]) for e in lines] == [
        ("client", "198.51.100.7", 30), ("prefix", None, 30), ("client", "198.51.100.7", 30)]
    assert all(e["log_level"] == "warning" and e["limiter"] == "admin-api tokens" for e in lines)
    assert "Zq9x" not in repr(logs)


def test_retry_after_is_whole_seconds_rounded_up():
    assert [retry_after(s) for s in (0.0, 0.2, 3.0, 179.01)] == ["1", "1", "3", "180"]


def test_addresses_are_counted_by_ipv4_address_and_ipv6_64():
    assert grouped("192.0.2.7") == "192.0.2.7"
    assert grouped("::ffff:192.0.2.7") == "192.0.2.7"
    assert grouped("2001:db8:1:2::1") == grouped("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert grouped("2001:db8:1:3::1") != grouped("2001:db8:1:2::1")


# --- admin-API tokens ----------------------------------------------------------------------


@asynccontextmanager
async def from_address(address: str) -> Any:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0))) as session:
        yield session


async def get_node(session: aiohttp.ClientSession, node: RunningNode, token: str,
                   headers: dict[str, str] | None = None) -> tuple[int, str | None, str]:
    async with session.get(node.url + "/api/v1/node",
                           headers={"Authorization": f"Bearer {token}", **(headers or {})}) as r:
        body = await r.json()
        code = body["error"]["code"] if r.status >= 400 else "ok"
        return r.status, r.headers.get("Retry-After"), code


def wrong_token() -> str:
    return TOKEN_PREFIX + b64u_encode(os.urandom(32))


async def started(node_factory: Any, name: str, clock: FakeClock, **overrides: Any) -> RunningNode:
    running: RunningNode = await node_factory(name, start=False, **overrides)
    await running.start(clock=clock)
    return running


async def test_2000_wrong_tokens_get_429s_and_the_right_token_still_works(node_factory):
    clock = FakeClock(START)
    broker = await started(node_factory, "Broker", clock)
    limit = broker.config.auth_failures_per_min
    gate = asyncio.Semaphore(16)
    async with from_address(GUESSER) as guesser:

        async def guess() -> tuple[int, str | None, str]:
            async with gate:
                return await get_node(guesser, broker, wrong_token())

        answers = Counter(await asyncio.gather(*(guess() for _ in range(2000))))
        # Exactly the limit is looked up, even with 16 in flight; then 429, and a
        # Retry-After of one share of the minute.
        assert answers == {(401, None, "unauthenticated"): limit, (429, "3", "rate_limited"): 2000 - limit}
        # Past the limit the right token is refused alike, before it is looked up ...
        assert await get_node(guesser, broker, broker.token) == (429, "3", "rate_limited")
        # ... but works from an address that did not guess,
        await broker.api("GET", "/api/v1/node", expect=200)
        # and from the guesser's once the attack has stopped for the window.
        clock.advance(60)
        assert await get_node(guesser, broker, broker.token) == (200, None, "ok")
        assert await get_node(guesser, broker, broker.token) == (200, None, "ok")  # right ones never count


async def test_guesses_at_one_token_from_many_addresses_are_limited_by_its_prefix(node_factory):
    clock = FakeClock(START)
    broker = await started(node_factory, "Broker", clock, auth_failures_per_min=5)
    other = (await broker.api("POST", "/api/v1/tokens", {"label": "second"}, expect=201))["token"]
    prefix = token_prefix(broker.token)
    assert token_prefix(other) != prefix
    statuses = []
    for n in range(2, 12):  # ten addresses, one guess each, all at the admin token
        async with from_address(f"127.0.0.{n}") as session:
            guess = TOKEN_PREFIX + prefix + b64u_encode(os.urandom(30))
            statuses.append((await get_node(session, broker, guess))[0])
    assert statuses == [401] * 5 + [429] * 5
    async with from_address("127.0.0.1") as session:
        assert await get_node(session, broker, broker.token) == (429, "12", "rate_limited")
        assert await get_node(session, broker, other) == (200, None, "ok")  # another prefix
        clock.advance(60)
        assert await get_node(session, broker, broker.token) == (200, None, "ok")


async def test_a_client_cannot_name_its_own_address_to_the_node(node_factory):
    broker = await started(node_factory, "Broker", FakeClock(START), auth_failures_per_min=5)
    statuses = []
    async with from_address(GUESSER) as guesser:
        for n in range(10):
            spoof = {FRONT_CLIENT_HEADER: f"198.51.100.{n}", "X-Forwarded-For": f"198.51.100.{n}"}
            statuses.append((await get_node(guesser, broker, wrong_token(), spoof))[0])
    assert statuses == [401] * 5 + [429] * 5


async def test_a_blocked_token_guesser_is_logged_by_address_and_by_prefix_without_the_prefix(node_factory):
    broker = await started(node_factory, "Broker", FakeClock(START), auth_failures_per_min=2)
    prefix = token_prefix(broker.token)
    with structlog.testing.capture_logs() as logs:
        async with from_address(GUESSER) as guesser:
            statuses = [(await get_node(guesser, broker, TOKEN_PREFIX + prefix + b64u_encode(os.urandom(30))))[0]
                        for _ in range(3)]
    assert statuses == [401, 401, 429]
    lines = [e for e in logs if e["event"] == "guessing limited"]
    assert [(e["limiter"], e["by"], e["who"]) for e in lines] == [
        ("admin-api tokens", "client", GUESSER), ("admin-api tokens", "prefix", None)]
    assert prefix not in repr(logs)  # the first characters of a real token: never logged


# --- invitation keys -----------------------------------------------------------------------


def wrong_key_request(agency: RunningNode, broker: RunningNode, invitation_id: str, n: int) -> bytes:
    request = ConnectionRequest(
        connection_id=f"con_guess{n}", requester_discovery=agency.node.discovery.decode(),
        invitation=InvitationProof(invitation_id=invitation_id, secret=b64u_encode(os.urandom(32))),
        requested_by=Person(name="Ava", email="ava@agency.example"), direction="send")
    return envelope(agency, broker.node.me, keys_of(broker), request,
                    message_type=MessageType.CONNECTION_REQUEST, envelope_id=f"env_guess{n}")


async def connection_state(node: RunningNode, connection_id: str) -> str:
    return str((await node.api("GET", f"/api/v1/connections/{connection_id}"))["connection"]["state"])


async def outbox_item(node: RunningNode, connection_id: str) -> dict[str, Any]:
    items = (await node.api("GET", "/api/v1/outbox"))["outbox"]
    return next(i for i in items if i["subject_id"] == connection_id)


async def test_wrong_invitation_keys_get_429s_and_the_right_key_works_once_the_window_passed(node_factory):
    clock = FakeClock(START)
    broker = await started(node_factory, "Broker", clock)
    agency = await started(node_factory, "Agency", clock)
    outsider = await started(node_factory, "Outsider", clock)
    limit = broker.config.invitation_failures_per_hour
    invite = await broker.api("POST", "/api/v1/invitations", {"name": "Agency"}, expect=201)
    real = parse_referral(invite["referral_url"], invite["referral_key"])
    bodies = [wrong_key_request(agency, broker, real.invitation_id, n) for n in range(200)]
    gate = asyncio.Semaphore(16)
    async with from_address(GUESSER) as guesser:

        async def post(body: bytes) -> tuple[int, str | None, str, bool]:
            async with gate, guesser.post(broker.url + INBOX_PATH, data=body,
                                          headers={"Content-Type": MEDIA_TYPE_JOSE_JSON}) as r:
                answer = json.loads(await r.read())
                return r.status, r.headers.get("Retry-After"), answer["error"]["code"], "receipt" in answer

        with structlog.testing.capture_logs() as logs:
            answers = Counter(await asyncio.gather(*(post(b) for b in bodies)))
    assert answers == {(403, None, "invitation_invalid", True): limit,
                       (429, "180", "rate_limited", False): 200 - limit}
    # The operator's log names each key that got blocked: the guesser's address, the
    # requesting node and the invitation, all three past the limit at once.
    blocked = [(e["by"], e["who"]) for e in logs if e["event"] == "guessing limited"]
    assert sorted(blocked) == sorted([("client", GUESSER), ("requester", agency.node.me),
                                      ("invitation", real.invitation_id)])
    invitations = (await broker.api("GET", "/api/v1/invitations"))["invitations"]
    assert [i["state"] for i in invitations] == ["open"]

    # The limits are per key: another node, from another address, redeems another invitation at once.
    second = await broker.api("POST", "/api/v1/invitations", {"name": "Outsider"}, expect=201)
    theirs = (await outsider.api("POST", "/api/v1/connections", {
        "referral_url": second["referral_url"], "referral_key": second["referral_key"]}))["connection"]["id"]
    await wait_for(lambda: _is(outsider, theirs, "active"))

    # The guessing node (and this invitation) wait, even with the right key: its request
    # is answered 429 and stays queued, the invitation unused.
    ours = (await agency.api("POST", "/api/v1/connections", {
        "referral_url": invite["referral_url"], "referral_key": invite["referral_key"]}))["connection"]["id"]

    async def told_to_wait() -> bool:
        item = await outbox_item(agency, ours)
        return item["state"] == "pending" and item["last_error"] == "HTTP 429"

    await wait_for(told_to_wait)
    assert await connection_state(agency, ours) == "requested"
    # Once the attack has stopped for the window, the queued request gets through.
    clock.advance(3600)
    agency.node.delivery.poke(broker.node.me)
    await wait_for(lambda: _is(agency, ours, "active"))
    invitations = (await broker.api("GET", "/api/v1/invitations"))["invitations"]
    assert {i["name"]: i["state"] for i in invitations} == {"Agency": "used", "Outsider": "used"}


async def test_redeeming_with_the_right_key_never_counts_as_a_guess(node_factory):
    """The same right-key request sent again in new envelopes (a duplicate each time),
    more times than the limit of wrong keys: none is answered 429, as only a wrong key
    counts (every redemption is counted before its key is checked, then taken back)."""
    clock = FakeClock(START)
    broker = await started(node_factory, "Broker", clock, invitation_failures_per_hour=2)
    agency = await started(node_factory, "Agency", clock)
    invite = await broker.api("POST", "/api/v1/invitations", {"name": "Agency"}, expect=201)
    real = parse_referral(invite["referral_url"], invite["referral_key"])
    request = ConnectionRequest(
        connection_id="con_rightkey", requester_discovery=agency.node.discovery.decode(),
        invitation=InvitationProof(invitation_id=real.invitation_id, secret=real.secret),
        requested_by=Person(name="Ava", email="ava@agency.example"), direction="send")
    statuses = []
    async with from_address(GUESSER) as session:
        for n in range(4):
            body = envelope(agency, broker.node.me, keys_of(broker), request,
                            message_type=MessageType.CONNECTION_REQUEST, envelope_id=f"env_right{n}")
            async with session.post(broker.url + INBOX_PATH, data=body,
                                    headers={"Content-Type": MEDIA_TYPE_JOSE_JSON}) as r:
                statuses.append(r.status)
    assert statuses == [200] * 4


async def _is(node: RunningNode, connection_id: str, state: str) -> bool:
    return await connection_state(node, connection_id) == state


async def test_a_requester_with_a_wrong_key_gets_its_refusal_after_the_429_not_endless_retries(node_factory):
    """429 is retryable, so a requester past the limit queues its request: the retry
    after Retry-After is heard, and a wrong key then ends in the same final refusal as
    before the limit (the refused attempts were not counted against it)."""
    clock = FakeClock(START)
    broker = await started(node_factory, "Broker", clock, invitation_failures_per_hour=2)
    agency = await started(node_factory, "Agency", clock)
    invite = await broker.api("POST", "/api/v1/invitations", {"name": "Agency"}, expect=201)
    wrong = {"referral_url": invite["referral_url"], "referral_key": KEY_PREFIX + b64u_encode(os.urandom(32))}

    async def connect(body: dict[str, str]) -> str:
        return str((await agency.api("POST", "/api/v1/connections", body))["connection"]["id"])

    for _ in range(2):  # under the limit: refused at once, for good
        cid = await connect(wrong)
        await wait_for(partial(_is, agency, cid, "refused"))
        assert (await outbox_item(agency, cid))["last_error"] == "invitation_invalid"
    third = await connect(wrong)

    async def told_to_wait(cid: str) -> bool:
        item = await outbox_item(agency, cid)
        return item["state"] == "pending" and item["last_error"] == "HTTP 429"

    await wait_for(lambda: told_to_wait(third))
    clock.advance(1800)  # Retry-After: one share of the hour
    agency.node.delivery.poke(broker.node.me)
    await wait_for(lambda: _is(agency, third, "refused"))
    item = await outbox_item(agency, third)
    assert (item["state"], item["last_error"]) == ("failed", "invitation_invalid")

    # The right key now waits its turn, and gets through.
    ours = await connect({"referral_url": invite["referral_url"], "referral_key": invite["referral_key"]})
    await wait_for(lambda: told_to_wait(ours))
    clock.advance(1800)
    agency.node.delivery.poke(broker.node.me)
    await wait_for(lambda: _is(agency, ours, "active"))


# --- through inbox fronts ------------------------------------------------------------------


@pytest.mark.slow
def test_behind_inbox_fronts_guesses_count_against_the_guessers_own_address(tmp_path):
    """With fronts, the kernel hands each connection to the node process or a front, and a
    front passes API requests on over a Unix socket, naming the client: the guesser is
    limited whichever process took its connection (whatever it says it is), and nobody
    else is."""
    broker = make_proc_node(tmp_path, "Broker", inbox_workers=2)
    broker.env["REFNODE_AUTH_FAILURES_PER_MIN"] = "5"
    broker.start()
    try:
        async def run() -> tuple[list[int], list[int]]:
            async def fresh(address: str, token: str, spoof: str = "") -> int:
                headers = {"Authorization": f"Bearer {token}"} | ({FRONT_CLIENT_HEADER: spoof} if spoof else {})
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                        local_addr=(address, 0), force_close=True)) as session:
                    async with session.get(broker.url + "/api/v1/node", headers=headers) as r:
                        return r.status

            guesses = [await fresh(GUESSER, wrong_token(), f"198.51.100.{n}") for n in range(30)]
            admins = [await fresh("127.0.0.1", broker.token) for _ in range(30)]
            return guesses, admins

        guesses, admins = asyncio.run(run())
    finally:
        broker.stop()
    assert guesses == [401] * 5 + [429] * 25
    assert admins == [200] * 30
