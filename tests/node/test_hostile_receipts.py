"""The sender's side of docs/protocol.md 9.4 and 7.5: a receipt that does not verify is no
delivery. A fake peer (tests/hostile.py) takes the place of a real, connected node on its
port and answers a real node's referral with a forged or mismatched receipt, breaking
exactly one step of 9.4. The sender must not count the envelope delivered; it retries
the identical bytes, and once an honest receipt comes back, it is delivered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import RunningNode, wait_for
from hostile import FakePeer, fresh_key, signed_flattened
from test_hostile_sender import NOBODY
from test_two_nodes import connect_by_invitation, referral_body

from node.storage import store
from protocol import jws
from protocol.encoding import dumps_canonical
from protocol.envelope import parse_envelope
from protocol.keys import SigningKey
from protocol.models import format_ts
from protocol.wire import TYP_RECEIPT

Forge = Callable[[dict[str, Any], SigningKey], bytes]


def signed(members: dict[str, Any], key: SigningKey) -> bytes:
    return jws.sign_flattened({"typ": TYP_RECEIPT}, dumps_canonical(members), key)


def changed(**changes: Any) -> Forge:
    """The honest receipt with ``changes`` to its members, signed by the peer's real key."""
    def forge(members: dict[str, Any], key: SigningKey) -> bytes:
        return signed({**members, **changes}, key)

    return forge


#: step of 9.4 broken -> (forge a receipt, what the sender's last error names)
FORGERIES: dict[str, tuple[Forge, str]] = {
    "1 not a JWS": (lambda m, k: b"thank you", "not valid JSON"),
    "1 another typ": (lambda m, k: jws.sign_flattened({"typ": "refnode-envelope+jws"}, dumps_canonical(m), k),
                      "typ must be"),
    "2 a key the peer never had": (lambda m, k: signed(m, fresh_key("receipt")), "unknown key"),
    "3 a signature by another key": (
        lambda m, k: signed_flattened({"typ": TYP_RECEIPT, "alg": "Ed25519", "kid": k.kid}, dumps_canonical(m),
                                      fresh_key("forger")),
        "signature"),
    "4 a major version not supported": (changed(type="receipt/2.0"), "not supported"),
    "4 rejected without an error": (changed(disposition="rejected"), "receipt"),
    "4 accepted with an error": (changed(error={"code": "internal", "message": "x"}), "receipt"),
    "5 from another node": (changed(**{"from": NOBODY}), "not from the key's node"),
    "6 another envelope": (changed(envelope_id="env_another"), "another envelope"),
    "6 other bytes": (changed(envelope_sha256=NOBODY), "other bytes"),
    "7 issued to another node": (changed(to=NOBODY), "another node"),
    "a signed rejection answered with 200": (
        changed(disposition="rejected", error={"code": "not_connected", "message": "no"}), "rejected"),
}


async def offer_item(agency: RunningNode) -> Any:
    items = await agency.node.db.read(lambda conn: store.list_outbox(conn))
    return next(i for i in items if i.type.startswith("referral-offer/"))


@pytest.mark.parametrize("forgery", list(FORGERIES))
async def test_a_receipt_that_does_not_verify_is_no_delivery(node_factory: Any, forgery: str) -> None:
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    key = broker.node.keys.signing
    forge, says = FORGERIES[forgery]
    honest = False

    def answer(body: bytes) -> tuple[int, bytes]:
        parsed = parse_envelope(body)
        members = {"type": "receipt/1.0", "envelope_id": parsed.envelope_id, "envelope_sha256": parsed.sha256,
                   "from": broker.node.me, "to": parsed.sender, "disposition": "accepted",
                   "received_at": format_ts(broker.node.clock.now())}
        return 200, (signed(members, key) if honest else forge(members, key))

    await broker.stop()  # its port, where the agency's pinned discovery document says its inbox is
    async with FakePeer(broker.config.port, answer) as fake:
        sent = await agency.api("POST", "/api/v1/referrals", referral_body(cid), expect=202)
        local_id = sent["referral"]["local_id"]

        async def tried_twice() -> bool:
            return len(fake.received) >= 2 and (await offer_item(agency)).attempts >= 2

        await wait_for(tried_twice)
        item = await offer_item(agency)
        assert item.state == "pending" and item.receipt is None and item.delivered_at is None
        assert item.last_error is not None and item.last_error.startswith("bad receipt")
        assert says in item.last_error, item.last_error
        assert (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["referral"]["state"] == "sent"
        assert len(set(fake.received)) == 1  # every retry, the identical bytes

        honest = True

        async def delivered() -> bool:
            return (await offer_item(agency)).state == "delivered"

        await wait_for(delivered)
        assert (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["referral"]["state"] == "delivered"


async def test_a_refusal_is_recorded_by_its_code_and_only_a_string_is_a_code(node_factory: Any) -> None:
    """7.6: another 4xx is a permanent failure, recorded by the peer's error code; an
    answer whose code is not a string is recorded by its HTTP status."""
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    answers = iter([(403, b'{"error": {"code": "not_connected", "message": "no"}}'),
                    (403, b'{"error": {"code": 5, "message": "no"}}')])
    await broker.stop()
    async with FakePeer(broker.config.port, lambda body: next(answers)):
        for title, error in (("First", "not_connected"), ("Second", "HTTP 403")):
            sent = await agency.api("POST", "/api/v1/referrals", referral_body(cid, deal={"title": title}),
                                    expect=202)
            local_id = sent["referral"]["local_id"]

            async def failed(local_id: str = local_id) -> bool:
                r = await agency.api("GET", f"/api/v1/referrals/{local_id}")
                return r["referral"]["state"] == "failed"

            await wait_for(failed)
            item = await offer_item(agency)
            assert (item.state, item.last_error, item.attempts) == ("failed", error, 1)


async def test_a_busy_peers_retry_after_is_honoured_and_a_peer_that_is_down_is_tried_again(node_factory: Any) -> None:
    """7.5: a 503 with Retry-After keeps the peer's next attempt at least that far off (the
    test nodes' own backoff is at most 2 s); a peer that does not answer at all is a
    network failure, retried like any other."""
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    await broker.stop()
    sent = await agency.api("POST", "/api/v1/referrals", referral_body(cid), expect=202)
    local_id = sent["referral"]["local_id"]

    async def tried(times: int) -> bool:
        return (await offer_item(agency)).attempts >= times

    await wait_for(lambda: tried(1))  # nobody on the port
    item = await offer_item(agency)
    assert item.state == "pending" and item.last_error is not None and item.last_error.startswith("network: ")
    await wait_for(lambda: tried(2))  # and again, after the backoff
    busy = (503, b'{"error": {"code": "unavailable", "message": "busy"}}', {"Retry-After": "3600"})
    async with FakePeer(broker.config.port, lambda body: busy) as fake:
        await wait_for(lambda: _answered(fake))
        await wait_for(lambda: _last_error_is(agency, "HTTP 503"))
        not_before = await agency.node.db.read(lambda conn: conn.execute(
            "SELECT retry_not_before FROM peers WHERE node_id = ?", (broker.node.me,)).fetchone()[0])
        assert not_before - agency.node.clock.now().timestamp() > 3500
        assert (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["referral"]["state"] == "sent"


async def _answered(fake: FakePeer) -> bool:
    return len(fake.received) >= 1


async def _last_error_is(agency: RunningNode, error: str) -> bool:
    return (await offer_item(agency)).last_error == error
