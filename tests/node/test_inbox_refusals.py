"""Bad envelopes are refused with their spec codes, and leave nothing behind.

Envelopes are built with the real keys of real nodes and POSTed over real HTTP."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import aiohttp
from conftest import RunningNode, wait_for
from metrics_kit import ascrape, metrics_token, parse, value
from test_two_nodes import CONSENT, connect_by_invitation

from node.storage import store
from protocol.discovery import verify_discovery
from protocol.envelope import seal_envelope
from protocol.messages import ContactProfile, DealSummary, Person, ReferralOffer, ReferralStatus
from protocol.models import format_ts
from protocol.receipts import verify_receipt
from protocol.suites import SuiteId
from protocol.wire import INBOX_PATH, MEDIA_TYPE_JOSE_JSON, MessageType


def offer(connection_id: str, referral_id: str = "rfl_test1") -> ReferralOffer:
    return ReferralOffer(
        referral_id=referral_id,
        connection_id=connection_id,
        referral_type="mortgage",
        deal=DealSummary(title="Refinance", amount="420000", currency="AUD"),
        contacts=[ContactProfile(ref="c1", first_name="Sam", last_name="Lee")],
        shared_fields=["deal.amount", "deal.title", "contacts.first_name", "contacts.last_name"],
        referring_agent=Person(name="Ava Agent", email="ava@agency.example"),
        consent=CONSENT,  # type: ignore[arg-type]
        sent_at="2026-11-23T00:00:00Z",
    )


def envelope(sender: RunningNode, recipient_id: str, recipient_keys: Any, message: Any, *,
             message_type: MessageType = MessageType.REFERRAL_OFFER, envelope_id: str = "env_t1",
             age_s: float = 0) -> bytes:
    suite, key = next((s, k) for s, k in recipient_keys.encryption if s == SuiteId.X25519_CHACHA)
    return seal_envelope(
        message,
        message_type=message_type,
        envelope_id=envelope_id,
        sender=sender.node.me,
        recipient=recipient_id,
        now=sender.node.clock.now() - timedelta(seconds=age_s),
        signing_key=sender.node.keys.signing,
        suite=suite,
        recipient_key=key,
    )


async def post(target: RunningNode, body: bytes, content_type: str = MEDIA_TYPE_JOSE_JSON) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.post(target.url + INBOX_PATH, data=body, headers={"Content-Type": content_type}) as r:
            return r.status, await r.read()


async def counts(node: RunningNode) -> tuple[int, int, int]:
    def read(conn):  # type: ignore[no-untyped-def]
        return (
            store.count_inbox(conn),
            len(store.list_referrals(conn)),
            conn.execute("SELECT count(*) FROM referral_events").fetchone()[0],
        )

    return await node.node.db.read(read)


def keys_of(node: RunningNode) -> Any:
    return verify_discovery(node.node.discovery, expected_node_id=node.node.me)[1]


async def test_refusals_have_codes_and_store_nothing(node_factory):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    outsider = await node_factory("Outsider")
    cid, _ = await connect_by_invitation(agency, broker)
    bkeys = keys_of(broker)
    before = await counts(broker)

    good = envelope(agency, broker.node.me, bkeys, offer(cid))
    # Tampered: one byte of the signature changed.
    data = json.loads(good)
    sig = data["signature"]
    data["signature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    status, body = await post(broker, json.dumps(data).encode())
    assert (status, json.loads(body)["error"]["code"]) == (401, "bad_signature")
    assert "receipt" not in json.loads(body)

    # Tampered ciphertext (payload) → the outer signature fails.
    data = json.loads(good)
    p = data["payload"]
    data["payload"] = p[:100] + ("A" if p[100] != "A" else "B") + p[101:]
    status, body = await post(broker, json.dumps(data).encode())
    assert (status, json.loads(body)["error"]["code"]) == (401, "bad_signature")

    # Addressed to another node: the sender is authenticated, so a signed rejection comes back.
    wrong = envelope(agency, outsider.node.me, keys_of(outsider), offer(cid), envelope_id="env_wrong")
    status, body = await post(broker, wrong)
    answer = json.loads(body)
    assert (status, answer["error"]["code"]) == (400, "wrong_recipient")
    rejected = verify_receipt(answer["receipt"].encode(), keys=bkeys, envelope_id="env_wrong")
    assert rejected.disposition.value == "rejected" and rejected.error.code == "wrong_recipient"

    # Expired: created 8 days ago.
    old = envelope(agency, broker.node.me, bkeys, offer(cid), envelope_id="env_old", age_s=8 * 24 * 3600)
    status, body = await post(broker, old)
    assert (status, json.loads(body)["error"]["code"]) == (400, "expired")

    # Too large: refused before it is read in full.
    status, body = await post(broker, b"{" + b" " * (1_048_576 + 10) + b"}")
    assert (status, json.loads(body)["error"]["code"]) == (413, "too_large")

    # Unknown sender: a node with no connection may only introduce itself.
    stranger = envelope(outsider, broker.node.me, bkeys, offer(cid), envelope_id="env_stranger")
    status, body = await post(broker, stranger)
    assert (status, json.loads(body)["error"]["code"]) == (403, "unknown_sender")

    # Malformed and wrong content type.
    status, body = await post(broker, b"not json")
    assert (status, json.loads(body)["error"]["code"]) == (400, "malformed")
    status, body = await post(broker, good, content_type="application/json")
    assert (status, json.loads(body)["error"]["code"]) == (400, "malformed")

    # Another organisation's id: the outsider connects too, then names the agency's connection.
    cid2, _ = await connect_by_invitation(outsider, broker)
    before = await counts(broker)
    foreign = envelope(outsider, broker.node.me, bkeys, offer(cid, "rfl_foreign"), envelope_id="env_foreign")
    status, body = await post(broker, foreign)
    assert (status, json.loads(body)["error"]["code"]) == (403, "not_connected")
    # A status update for a referral that was never sent to the outsider.
    bogus = ReferralStatus(referral_id="rfl_none", seq=1, status="accepted", at=format_ts(outsider.node.clock.now()))
    status, body = await post(broker, envelope(outsider, broker.node.me, bkeys, bogus,
                                               message_type=MessageType.REFERRAL_STATUS, envelope_id="env_bogus"))
    assert (status, json.loads(body)["error"]["code"]) == (404, "unknown_subject")
    assert await counts(broker) == before


async def test_replay_is_answered_with_the_original_receipt(node_factory):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    bkeys = keys_of(broker)
    before = await counts(broker)

    first = envelope(agency, broker.node.me, bkeys, offer(cid), envelope_id="env_r1")
    status1, receipt1 = await post(broker, first)
    status2, receipt2 = await post(broker, first)
    assert (status1, status2) == (200, 200)
    assert receipt1 == receipt2  # the very same signed receipt
    assert verify_receipt(receipt1, keys=bkeys, envelope_id="env_r1").disposition.value == "accepted"

    # Same id, different bytes (HPKE is randomised, so re-sealing gives new bytes).
    second = envelope(agency, broker.node.me, bkeys, offer(cid), envelope_id="env_r1")
    assert second != first
    status3, body3 = await post(broker, second)
    assert (status3, json.loads(body3)["error"]["code"]) == (409, "replayed")

    # The same referral in a fresh envelope: a duplicate, applied once.
    third = envelope(agency, broker.node.me, bkeys, offer(cid), envelope_id="env_r2")
    status4, receipt4 = await post(broker, third)
    assert status4 == 200
    assert verify_receipt(receipt4, keys=bkeys, envelope_id="env_r2").disposition.value == "duplicate"
    inbox, refs, _ = await counts(broker)
    assert (inbox, refs) == (before[0] + 2, before[1] + 1)
    # The operator's counts: the first accepted, the same bytes again and the same offer
    # in a new envelope duplicates, the other bytes under a used id rejected.
    assert await offers_counted(broker) == {"accepted": 1, "duplicate": 2, "rejected": 1}
    await post(broker, envelope(agency, broker.node.me, bkeys, offer(cid, "rfl_test2"), envelope_id="env_r3"))
    assert await offers_counted(broker) == {"accepted": 2, "duplicate": 2, "rejected": 1}


async def offers_counted(node: RunningNode) -> dict[str, float]:
    """The referral offers the node's /metrics counts, by outcome."""
    status, text, _ = await ascrape(node.url, metrics_token(node.config.data_dir))
    assert status == 200, text
    return {outcome: value(parse(text), "refnode_inbox_envelopes_total", type="referral-offer", outcome=outcome,
                           code=code) for outcome, code in (("accepted", "none"), ("duplicate", "none"),
                                                            ("rejected", "replayed"))}


async def test_a_peer_cannot_plant_unverified_keys_and_a_refused_offer_does_not_block_the_queue(node_factory):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    bkeys = keys_of(broker)
    await broker.api("POST", "/api/v1/users", {"email": "bree@broker.example", "name": "Bree", "role": "broker"},
                     expect=201)
    # A connected peer sends a connection request with a forged discovery document.
    from protocol.messages import ConnectionRequest

    forged = ConnectionRequest(connection_id="con_forged", requester_discovery="junk", target_email="bree@broker.example",
                               requested_by=Person(name="Mallory", email="m@agency.example"), direction="both")
    status, body = await post(broker, envelope(agency, broker.node.me, bkeys, forged,
                                               message_type=MessageType.CONNECTION_REQUEST, envelope_id="env_forged"))
    assert (status, json.loads(body)["error"]["code"]) == (400, "malformed")
    # The broker still restarts: nothing unverified was stored.
    await broker.stop()
    await broker.start()
    assert agency.node.me in broker.node.peers

    # An offer our CRM cannot file (a blank title) is refused for good, not retried...
    blank = offer(cid, "rfl_blank").model_copy(update={"deal": DealSummary(title="   ")})
    status, body = await post(broker, envelope(agency, broker.node.me, bkeys, blank, envelope_id="env_blank"))
    answer = json.loads(body)
    assert (status, answer["error"]["code"]) == (400, "malformed") and "title" in answer["error"]["message"]
    # ...so a queued one behind it still goes through.
    sent = await agency.api("POST", "/api/v1/referrals", {
        "connection_id": cid, "referral_type": "mortgage", "deal": {"title": "   "},
        "contacts": [{"ref": "c1", "first_name": "Jo"}], "shared_fields": ["contacts.first_name"],
        "referring_agent": {"name": "Ava", "email": "ava@agency.example"}, "consent": CONSENT}, expect=202)
    good = await agency.api("POST", "/api/v1/referrals", {
        "connection_id": cid, "referral_type": "mortgage", "deal": {"title": "Refinance"},
        "contacts": [{"ref": "c1", "first_name": "Jo"}], "shared_fields": ["contacts.first_name"],
        "referring_agent": {"name": "Ava", "email": "ava@agency.example"}, "consent": CONSENT}, expect=202)

    async def settled() -> bool:
        a = (await agency.api("GET", f"/api/v1/referrals/{sent['referral']['local_id']}"))["referral"]["state"]
        b = (await agency.api("GET", f"/api/v1/referrals/{good['referral']['local_id']}"))["referral"]["state"]
        return (a, b) == ("failed", "delivered")

    await wait_for(settled)


async def test_an_unknown_invitation_is_answered_as_a_wrong_key_is(node_factory):
    """A guesser cannot tell an invitation id that does not exist from a key that does not
    match: the same status, code and message (issue 11, item 6)."""
    from protocol.encoding import b64u_encode
    from protocol.invitations import parse_referral
    from protocol.messages import ConnectionRequest, InvitationProof

    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    invite = await broker.api("POST", "/api/v1/invitations", {"name": "Agency"}, expect=201)
    real = parse_referral(invite["referral_url"], invite["referral_key"])
    wrong_secret = b64u_encode(bytes(32))
    answers = []
    for n, (invitation_id, secret) in enumerate([(real.invitation_id, wrong_secret),
                                                 ("inv_nosuchinvitation000000", wrong_secret),
                                                 ("inv_nosuchinvitation000000", real.secret)]):
        request = ConnectionRequest(
            connection_id=f"con_guess{n}", requester_discovery=agency.node.discovery.decode(),
            invitation=InvitationProof(invitation_id=invitation_id, secret=secret),
            requested_by=Person(name="Ava", email="ava@agency.example"), direction="send")
        body = envelope(agency, broker.node.me, keys_of(broker), request,
                        message_type=MessageType.CONNECTION_REQUEST, envelope_id=f"env_guess{n}")
        status, raw = await post(broker, body)
        error = json.loads(raw)["error"]
        answers.append((status, error["code"], error["message"]))
    assert answers[0][1] == "invitation_invalid"
    assert answers[0] == answers[1] == answers[2]
    assert (await broker.api("GET", "/api/v1/connections"))["connections"] == []


async def test_a_full_database_answers_503_with_retry_after_and_no_receipt_then_takes_the_envelope(node_factory):
    """The node cannot store anything (its database at its size limit: SQLite's
    max_page_count, as a full disk would leave it): the envelope gets the retryable 503
    ``unavailable`` with Retry-After and no receipt, nothing is stored, and the same bytes
    are taken once there is room (tests/node/test_disk_full.py fills a real disk)."""
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    body = envelope(agency, broker.node.me, keys_of(broker), offer(cid), envelope_id="env_full")
    before = await counts(broker)
    pages = await broker.node.db.write(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0])
    await broker.node.db.write(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages}"))
    async with aiohttp.ClientSession() as session:
        async with session.post(broker.url + INBOX_PATH, data=body, headers={"Content-Type": MEDIA_TYPE_JOSE_JSON}) as r:
            status, retry, answer = r.status, r.headers.get("Retry-After"), await r.json()
    assert (status, retry) == (503, "30")
    assert answer == {"error": {"code": "unavailable", "message": "the node cannot store anything now; try again later"}}
    assert await counts(broker) == before
    await broker.node.db.write(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"))
    status, receipt = await post(broker, body)
    assert status == 200
    assert verify_receipt(receipt, keys=keys_of(broker), envelope_id="env_full").disposition.value == "accepted"
    assert await counts(broker) != before


async def test_the_nodes_own_envelope_limit_holds_for_every_caller_of_receive(node_factory):
    """Node.receive parses with the node's configured limit, not the protocol's 1 MiB: a
    caller other than the inbox (which reads the body with the same limit) gets too_large."""
    small = await node_factory("Small", max_envelope_bytes=65_536)
    over = await small.node.receive(b" " * 65_537)
    at = await small.node.receive(b" " * 65_536)
    assert over.error is not None and over.error.code.value == "too_large"
    assert at.error is not None and at.error.code.value == "malformed"


async def test_the_test_only_switches_turn_off_one_check_each(node_factory, monkeypatch):
    """The switches tests/node/test_conformance_suite.py turns on (node.breaks, honoured only
    in test mode): "recipient" takes an envelope addressed to another node and still refuses
    an expired one; "expiry" takes an expired envelope and still refuses another recipient."""
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    bkeys, elsewhere = keys_of(broker), agency.node.me  # an id that is not the broker's
    week = 8 * 24 * 3600

    async def answer(envelope_id: str, *, to: str, age_s: float = 0) -> tuple[int, str | None]:
        body = envelope(agency, to, bkeys, offer(cid, f"rfl_{envelope_id}"), envelope_id=envelope_id, age_s=age_s)
        status, raw = await post(broker, body)
        return status, None if status == 200 else json.loads(raw)["error"]["code"]

    assert broker.node.breaks == frozenset()  # never on unless a test asks
    monkeypatch.setattr(broker.node, "breaks", frozenset({"recipient"}))
    assert await answer("env_elsewhere1", to=elsewhere) == (200, None)
    assert await answer("env_old1", to=broker.node.me, age_s=week) == (400, "expired")
    monkeypatch.setattr(broker.node, "breaks", frozenset({"expiry"}))
    assert await answer("env_old2", to=broker.node.me, age_s=week) == (200, None)
    assert await answer("env_elsewhere2", to=elsewhere) == (400, "wrong_recipient")
