"""The receiver's checks past the envelope's own, tripped by a hostile sender: introductions
(docs/protocol.md 8.6), repeats (8.7), handshakes and users no longer active (12),
direction seen from the receiving side (12.3, 14.3), offer rules (14.5) and status
updates (14.4). Each case is refused with its code, a signed rejected receipt when the
sender was authenticated, and no row of the receiver changed (tests/hostile.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from conftest import RunningNode, wait_for
from hostile import DROP, FakePeer, Hostile, fresh_key, keys_of, post, refused, snapshot
from test_hostile_sender import NOBODY, offer
from test_two_nodes import connect_by_invitation, referral_body

from node.base.clock import FakeClock
from protocol.envelope import digest
from protocol.invitations import parse_referral
from protocol.models import format_ts
from protocol.receipts import verify_receipt
from protocol.suites import hpke_info


def request(h: Hostile, connection_id: str = "con_hostile1", **changes: Any) -> dict[str, Any]:
    """A connection-request from ``h``'s node asking the target's admin (by email)."""
    body: dict[str, Any] = {
        "connection_id": connection_id,
        "requester_discovery": h.sender.node.discovery.decode(),
        "target_email": h.target.extra["admin_email"],
        "requested_by": {"name": "Mallory", "email": "mallory@outsider.example"},
        "direction": "send",
    }
    for name, value in changes.items():
        if value is DROP:
            body.pop(name)
        else:
            body[name] = value
    return body


@pytest.fixture
async def three(node_factory: Any) -> tuple[RunningNode, RunningNode, RunningNode, str]:
    """An agency connected to a broker (the broker receives its referrals), and an
    outsider the broker has never heard of."""
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    outsider = await node_factory("Outsider")
    cid, _ = await connect_by_invitation(agency, broker)
    return agency, broker, outsider, cid


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_three(module_node_factory: Any) -> tuple[RunningNode, RunningNode, RunningNode, str]:
    """As ``three``, one for all the refusals: each checks its own against a snapshot."""
    agency = await module_node_factory("Agency")
    broker = await module_node_factory("Broker")
    outsider = await module_node_factory("Outsider")
    cid, _ = await connect_by_invitation(agency, broker)
    return agency, broker, outsider, cid


async def connection_state(n: RunningNode, cid: str) -> str | None:
    conns = (await n.api("GET", "/api/v1/connections"))["connections"]
    return next((c["state"] for c in conns if c["id"] == cid), None)


# -- 8.6: introductions -----------------------------------------------------------------


INTRODUCTIONS: dict[str, tuple[Any, int, str, bool]] = {
    "I1 another recipient": (lambda h, a: h.envelope(request(h), "connection-request/1.0",
                                                     outer={"rn_to": NOBODY}, inner={"rn_to": NOBODY}),
                             400, "wrong_recipient", False),
    "I1 too old": (lambda h, a: h.envelope(request(h), "connection-request/1.0", age_s=604_801), 400, "expired",
                   False),
    "I1 from the future": (lambda h, a: h.envelope(request(h), "connection-request/1.0", age_s=-301), 400,
                           "not_yet_valid", False),
    "I2 sealed for another envelope": (
        lambda h, a: h.envelope(request(h), "connection-request/1.0",
                                info=hpke_info(h.me, h.target.node.me, "env_another")),
        400, "decrypt_failed", False),
    "I2 routing differs inside": (lambda h, a: h.envelope(request(h), "connection-request/1.0",
                                                          inner={"rn_id": "env_other"}),
                                  401, "bad_signature", False),
    "I3 neither invitation nor email": (lambda h, a: h.envelope(request(h, target_email=DROP),
                                                                "connection-request/1.0"),
                                        400, "malformed", False),
    "I4 another node's discovery document": (
        lambda h, a: h.envelope(request(h, requester_discovery=a.node.discovery.decode()), "connection-request/1.0"),
        400, "fingerprint_mismatch", False),
    "I4 a discovery document that is not one": (
        lambda h, a: h.envelope(request(h, requester_discovery="junk"), "connection-request/1.0"),
        400, "malformed", False),
    "I5 outer kid not in the document": (
        lambda h, a: h.envelope(request(h), "connection-request/1.0", outer={"kid": fresh_key("I5").kid},
                                outer_key=fresh_key("I5")),
        401, "unknown_key", False),
    "I5 outer signature by another key": (
        lambda h, a: h.envelope(request(h), "connection-request/1.0", outer_key=fresh_key("I5b")),
        401, "bad_signature", False),
    "I6 inner signature by another key": (
        lambda h, a: h.envelope(request(h), "connection-request/1.0", inner_key=fresh_key("I6")),
        401, "bad_signature", True),
    "I6 inner kid unknown": (
        lambda h, a: h.envelope(request(h), "connection-request/1.0", inner={"kid": fresh_key("I6b").kid},
                                inner_key=fresh_key("I6b")),
        401, "unknown_key", True),
    # 12.5: the request itself (checked once the sender is known, so with a receipt)
    "12.5 a connection id taken by another connection": (
        lambda h, a: h.envelope(request(h, connection_id=h.taken), "connection-request/1.0"),
        400, "malformed", True),
    "12.2 an email that is no user here": (
        lambda h, a: h.envelope(request(h, target_email="nobody@broker.example"), "connection-request/1.0"),
        403, "unknown_user", True),
}


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("check", list(INTRODUCTIONS))
async def test_each_introduction_check_refuses_and_pins_nothing(shared_three, check: str) -> None:
    agency, broker, outsider, cid = shared_three
    hostile = Hostile(outsider, broker)
    hostile.taken = cid  # type: ignore[attr-defined]
    build, status, code, receipt = INTRODUCTIONS[check]
    await refused(broker, build(hostile, agency), status=status, code=code, receipt=receipt)
    # (refused() found every table as it was: the outsider's keys are not pinned.)
    assert outsider.node.me not in broker.node.peers


async def test_the_unbroken_introduction_is_accepted_and_waits_for_the_admin(three) -> None:
    agency, broker, outsider, cid = three
    answer = await post(broker, Hostile(outsider, broker).envelope(request(Hostile(outsider, broker)),
                                                                   "connection-request/1.0"))
    assert answer.status == 200, answer.body
    assert await connection_state(broker, "con_hostile1") == "requested"
    assert outsider.node.me in broker.node.peers


async def test_a_user_no_longer_active_cannot_be_asked_to_connect(three) -> None:
    """12.2: target_email must be an active user; a deactivated one is unknown_user."""
    agency, broker, outsider, cid = three
    bree = (await broker.api("POST", "/api/v1/users", {"email": "bree@broker.example", "name": "Bree",
                                                       "role": "broker"}, expect=201))["user"]
    hostile = Hostile(outsider, broker)
    active = hostile.envelope(request(hostile, "con_bree1", target_email="bree@broker.example"),
                              "connection-request/1.0")
    await broker.api("PATCH", f"/api/v1/users/{bree['id']}", {"active": False})
    await refused(broker, active, status=403, code="unknown_user", receipt=True)
    await broker.api("PATCH", f"/api/v1/users/{bree['id']}", {"active": True})
    assert (await post(broker, hostile.envelope(request(hostile, "con_bree2", target_email="bree@broker.example"),
                                                "connection-request/1.0"))).status == 200


# -- 11.4: invitations ------------------------------------------------------------------


async def test_each_invitation_check_refuses_by_its_code(three) -> None:
    agency, broker, outsider, cid = three
    hostile = Hostile(outsider, broker)

    async def invitation(ttl_s: int | None = None) -> tuple[str, str]:
        made = await broker.api("POST", "/api/v1/invitations", {"name": "Outsider", **({"ttl_s": ttl_s} if ttl_s else {})})
        parsed = parse_referral(made["referral_url"], made["referral_key"])
        return parsed.invitation_id, parsed.secret

    def redeeming(invitation_id: str, secret: str, connection_id: str) -> bytes:
        return hostile.envelope(request(hostile, connection_id, target_email=DROP,
                                        invitation={"invitation_id": invitation_id, "secret": secret}),
                                "connection-request/1.0")

    open_id, open_secret = await invitation()
    wrong = open_secret[:-2] + ("AA" if not open_secret.endswith("AA") else "BA")
    await refused(broker, redeeming(open_id, wrong, "con_inv1"), status=403, code="invitation_invalid", receipt=True)
    await refused(broker, redeeming("inv_nonesuch", open_secret, "con_inv2"), status=403, code="invitation_invalid",
                  receipt=True)
    revoked_id, revoked_secret = await invitation()
    await broker.api("POST", f"/api/v1/invitations/{revoked_id}/revoke")
    await refused(broker, redeeming(revoked_id, revoked_secret, "con_inv3"), status=403, code="invitation_revoked",
                  receipt=True)
    expiring_id, expiring_secret = await invitation(ttl_s=1)
    await asyncio.sleep(1.2)
    await refused(broker, redeeming(expiring_id, expiring_secret, "con_inv4"), status=403,
                  code="invitation_expired", receipt=True)
    # the open one, with its key, works once; then it is used
    assert (await post(broker, redeeming(open_id, open_secret, "con_inv5"))).status == 200
    await wait_for(lambda: _state_is(broker, "con_inv5", "responded", "active"))
    await refused(broker, redeeming(open_id, open_secret, "con_inv6"), status=403, code="invitation_used",
                  receipt=True)


async def _state_is(n: RunningNode, cid: str, *states: str) -> bool:
    return await connection_state(n, cid) in states


# -- 12.4, 12.5: handshake messages -----------------------------------------------------


async def test_handshake_messages_for_connections_the_sender_does_not_have(three) -> None:
    agency, broker, outsider, cid = three
    hostile = Hostile(agency, broker)
    for kind, message in (("connection-confirm/1.0", {"connection_id": "con_nonesuch"}),
                          ("connection-accept/1.0", {"connection_id": "con_nonesuch", "direction": "send",
                                                     "accepted_by": {"name": "M", "email": "m@x.example"},
                                                     "name": "M"}),
                          ("connection-refuse/1.0", {"connection_id": "con_nonesuch", "reason": "declined"}),
                          ("disconnect/1.0", {"connection_id": "con_nonesuch"})):
        await refused(broker, hostile.envelope(message, kind), status=404, code="unknown_subject", receipt=True)
    # the outsider asks to connect (pending with the broker's admin) ...
    out = Hostile(outsider, broker)
    assert (await post(broker, out.envelope(request(out, "con_pending"), "connection-request/1.0"))).status == 200
    # ... the agency may not confirm or end the outsider's connection ...
    for kind in ("connection-confirm/1.0", "disconnect/1.0"):
        await refused(broker, hostile.envelope({"connection_id": "con_pending"}, kind), status=404,
                      code="unknown_subject", receipt=True)
    # ... nor the outsider the agency's
    await refused(broker, out.envelope({"connection_id": cid}, "disconnect/1.0"), status=404,
                  code="unknown_subject", receipt=True)
    # ... and the outsider may not confirm before the admin accepted (requested -> active is no move)
    await refused(broker, out.envelope({"connection_id": "con_pending"}, "connection-confirm/1.0"), status=409,
                  code="invalid_transition", receipt=True)
    # ... nor refer anything on it (14.3, row 1)
    await refused(broker, out.envelope(offer("con_pending")), status=403, code="not_connected", receipt=True)
    assert await connection_state(broker, "con_pending") == "requested"


async def test_a_key_rotation_must_be_the_senders_own_document(three) -> None:
    agency, broker, outsider, cid = three
    hostile = Hostile(agency, broker)
    await refused(broker, hostile.envelope({"discovery": outsider.node.discovery.decode()}, "key-rotation/1.0"),
                  status=400, code="fingerprint_mismatch", receipt=True)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_known_peers_connection_request_must_carry_its_own_document(shared_three) -> None:
    """13.2: a connection-request from a peer already known is no introduction, so opening
    it checks no discovery document (8.6 I4 is for introductions); the receiver still
    verifies the one it carries against the sender. Another node's (the outsider's,
    genuinely signed) is refused, and no key of the outsider is pinned."""
    agency, broker, outsider, cid = shared_three
    hostile = Hostile(agency, broker)
    borrowed = request(hostile, "con_borrowed", requester_discovery=outsider.node.discovery.decode())
    await refused(broker, hostile.envelope(borrowed, "connection-request/1.0", envelope_id="env_request_borrowed"),
                  status=400, code="fingerprint_mismatch", receipt=True)
    assert outsider.node.me not in broker.node.peers


# -- 12.3, 14.3: direction and connection, from the receiving side -----------------------


async def test_an_offer_against_the_connections_direction_is_refused(three) -> None:
    """The agency may send referrals to the broker and not the other way: an offer from the
    broker, correctly signed on the active connection, is direction_not_allowed, and that
    comes before the offer's own rules."""
    agency, broker, outsider, cid = three
    backwards = Hostile(broker, agency)
    await refused(agency, backwards.envelope(offer(cid)), status=403, code="direction_not_allowed", receipt=True)
    await refused(agency, backwards.envelope(offer(cid, shared_fields=[])), status=403,
                  code="direction_not_allowed", receipt=True)
    # the same offer the right way round is taken
    assert (await post(broker, Hostile(agency, broker).envelope(offer(cid)))).status == 200


async def test_an_offer_needs_an_active_connection_with_the_sender(three) -> None:
    agency, broker, outsider, cid = three
    hostile = Hostile(agency, broker)
    await refused(broker, hostile.envelope(offer("con_nonesuch")), status=403, code="not_connected", receipt=True)
    await broker.api("POST", f"/api/v1/connections/{cid}/disconnect", {"reason": "closing"})
    await wait_for(lambda: _state_is(agency, cid, "disconnected"))
    await refused(broker, hostile.envelope(offer(cid)), status=403, code="not_connected", receipt=True)
    # (a disconnected connection is refused before the offer's own rules are looked at)
    await refused(broker, hostile.envelope(offer(cid, shared_fields=["nonsense"])), status=403,
                  code="not_connected", receipt=True)


# -- 14.5: what an offer may carry -------------------------------------------------------


def contact(**members: Any) -> list[dict[str, Any]]:
    return [{"ref": "c1", "role": "primary", "first_name": "Sam", "last_name": "Lee", **members}]


SHARING: dict[str, tuple[dict[str, Any], int, str]] = {
    "a name not shareable": ({"shared_fields": ["deal.title", "contacts.first_name", "contacts.last_name",
                                                "deal.amount", "contacts.notes"]}, 400, "malformed"),
    "a name not shareable, before a member not shared": ({"shared_fields": ["deal.title", "custom"]}, 400,
                                                          "malformed"),
    "an email not shared": ({"contacts": contact(email="sam@example.com")}, 400, "field_not_allowed"),
    "a phone not shared": ({"contacts": contact(phone="+61 2 9999 0000")}, 400, "field_not_allowed"),
    "an address not shared, even empty": ({"contacts": contact(address={})}, 400, "field_not_allowed"),
    "a date of birth not shared": ({"contacts": contact(date_of_birth="1980-01-02")}, 400, "field_not_allowed"),
    "a last name not shared": ({"shared_fields": ["deal.title", "contacts.first_name", "deal.amount"]}, 400,
                               "field_not_allowed"),
    "an amount and currency not shared": ({"shared_fields": ["deal.title", "contacts.first_name",
                                                             "contacts.last_name"]}, 400, "field_not_allowed"),
    "a summary not shared": ({"deal": {"title": "R", "amount": "1", "currency": "AUD", "summary": "s"}}, 400,
                             "field_not_allowed"),
    "a deal type not shared": ({"deal": {"title": "R", "amount": "1", "currency": "AUD", "deal_type": "loan"}}, 400,
                               "field_not_allowed"),
    "an owner not shared": ({"owner": {"name": "Olly", "email": "olly@agency.example"}}, 400, "field_not_allowed"),
    "a client who did not consent": ({"contacts": contact() + [{"ref": "c2", "role": "co-applicant",
                                                                 "first_name": "Kim"}]},
                                     400, "consent_required"),
    "a member not shared, before consent": ({"contacts": [{"ref": "c9", "role": "primary", "first_name": "Kim",
                                                           "email": "k@example.com"}]}, 400, "field_not_allowed"),
}


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("rule", list(SHARING))
async def test_each_offer_rule_is_kept_by_the_receiver(shared_three, rule: str) -> None:
    agency, broker, outsider, cid = shared_three
    changes, status, code = SHARING[rule]
    await refused(broker, Hostile(agency, broker).envelope(offer(cid, **changes)), status=status, code=code,
                  receipt=True)


async def test_an_offer_with_only_a_title_and_nothing_listed_is_taken(three) -> None:
    """deal.title is always allowed (REQUIRED_FIELDS); what is listed and present is fine."""
    agency, broker, outsider, cid = three
    hostile = Hostile(agency, broker)
    bare = offer(cid, deal={"title": "Refinance"}, contacts=[{"ref": "c1", "role": "primary"}], shared_fields=[])
    assert (await post(broker, hostile.envelope(bare))).status == 200
    full = offer(cid, referral_id="rfl_full", deal={"title": "R", "amount": "1", "currency": "AUD", "summary": "s",
                                                   "deal_type": "loan"},
                 owner={"name": "Olly", "email": "olly@agency.example"},
                 contacts=contact(email="s@example.com", phone="+61 2 9999 0000", address={},
                                  date_of_birth="1980-01-02"),
                 shared_fields=["deal.title", "deal.deal_type", "deal.amount", "deal.summary", "owner",
                                "contacts.first_name", "contacts.last_name", "contacts.email", "contacts.phone",
                                "contacts.address", "contacts.date_of_birth"])
    answer = await post(broker, hostile.envelope(full))
    assert answer.status == 200, answer.body


# -- 8.7, 14.4: repeats and status updates ------------------------------------------------


async def test_the_same_envelope_id_with_other_bytes_is_replayed(three) -> None:
    agency, broker, outsider, cid = three
    hostile = Hostile(agency, broker)
    assert (await post(broker, hostile.envelope(offer(cid), envelope_id="env_once"))).status == 200
    await refused(broker, hostile.envelope(offer(cid, referral_id="rfl_other"), envelope_id="env_once"),
                  status=409, code="replayed", receipt=True)


async def test_status_updates_are_checked_by_the_referrer(three) -> None:
    agency, broker, outsider, cid = three
    sent = await agency.api("POST", "/api/v1/referrals", referral_body(cid), expect=202)
    local_id = sent["referral"]["local_id"]

    async def state() -> str:
        return (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["referral"]["state"]

    await wait_for(lambda: _equals(state, "delivered"))
    referral_id = (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["referral"]["id"]
    hostile = Hostile(broker, agency)
    at = format_ts(broker.node.clock.now())

    def status(seq: int, name: str, rid: str = referral_id, **more: str) -> bytes:
        return hostile.envelope({"referral_id": rid, "seq": seq, "status": name, "at": at, **more},
                                "referral-status/1.0")

    await refused(agency, status(1, "accepted", "rfl_nonesuch"), status=404, code="unknown_subject", receipt=True)
    assert (await post(agency, status(1, "declined", reason="not a fit"))).status == 200
    assert await state() == "declined"
    from node.storage import store

    events = await agency.node.db.read(lambda conn: store.list_events(conn, "sender", broker.node.me, referral_id))
    assert [(e.seq, e.status, e.reason, e.applied) for e in events] == [(1, "declined", "not a fit", True)]
    # declined is final: the next update may not move it
    await refused(agency, status(2, "accepted"), status=409, code="invalid_transition", receipt=True)
    # a repeat of an applied seq changes nothing
    repeat = await post(agency, status(1, "won"))
    assert repeat.status == 200 and await state() == "declined"


async def test_held_updates_apply_in_order_until_one_may_not(three) -> None:
    """14.4: early updates are held; when the gap fills they apply in seq order, and the
    first that is no allowed move stops the chain and stays held (the envelope is still
    accepted)."""
    agency, broker, outsider, cid = three
    sent = await agency.api("POST", "/api/v1/referrals", referral_body(cid), expect=202)
    local_id = sent["referral"]["local_id"]

    async def state() -> str:
        return (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["referral"]["state"]

    await wait_for(lambda: _equals(state, "delivered"))
    referral_id = (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["referral"]["id"]
    hostile = Hostile(broker, agency)
    at = format_ts(broker.node.clock.now())

    def status(seq: int, name: str) -> bytes:
        return hostile.envelope({"referral_id": referral_id, "seq": seq, "status": name, "at": at},
                                "referral-status/1.0")

    for seq, name in ((3, "won"), (4, "in-progress")):  # won is final: 4 may never apply
        assert (await post(agency, status(seq, name))).status == 200
    assert await state() == "delivered"  # held: 1 and 2 have not come
    assert (await post(agency, status(1, "accepted"))).status == 200
    assert await state() == "accepted"
    answer = await post(agency, status(2, "in-progress"))
    assert answer.status == 200, answer.body
    assert await state() == "won"  # 2 and 3 applied; 4 stopped the chain


async def _equals(read: Any, wanted: str) -> bool:
    return await read() == wanted


async def test_no_more_than_100_early_updates_are_held(three) -> None:
    agency, broker, outsider, cid = three
    sent = await agency.api("POST", "/api/v1/referrals", referral_body(cid), expect=202)
    local_id = sent["referral"]["local_id"]

    async def state() -> str:
        return (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["referral"]["state"]

    await wait_for(lambda: _equals(state, "delivered"))
    referral_id = (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["referral"]["id"]
    hostile = Hostile(broker, agency)
    at = format_ts(broker.node.clock.now())

    def status(seq: int) -> bytes:
        return hostile.envelope({"referral_id": referral_id, "seq": seq, "status": "in-progress", "at": at},
                                "referral-status/1.0")

    for seq in range(2, 102):  # seq 1 never comes: 100 wait for it
        assert (await post(agency, status(seq))).status == 200, seq
    await refused(agency, status(102), status=409, code="out_of_order", receipt=True)
    await refused(agency, status(2), status=409, code="out_of_order", receipt=True)  # a repeat too, past the limit
    # seq 1 arrives: all 101 apply in order
    assert (await post(agency, status(1))).status == 200
    referral = (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["referral"]
    assert referral["state"] == "in-progress"


async def test_a_byte_identical_repeat_gets_the_original_receipt_even_once_out_of_the_window(three) -> None:
    """8.5 step R: the very bytes accepted before are answered with the stored receipt,
    whatever a check would say now (here: the envelope has grown too old since)."""
    agency, broker, outsider, cid = three
    hostile = Hostile(agency, broker)
    body = hostile.envelope(offer(cid), envelope_id="env_old", age_s=604_800 - 2)
    first = await post(broker, body)
    assert first.status == 200, first.body
    await asyncio.sleep(3)
    before = await snapshot(broker)
    again = await post(broker, body)
    assert (again.status, again.body) == (200, first.body)
    assert await snapshot(broker) == before
    # other bytes under that id are judged as they are now
    await refused(broker, hostile.envelope(offer(cid), envelope_id="env_old", age_s=604_800 + 2), status=400,
                  code="expired", receipt=True)


async def _closing_note(n: RunningNode, cid: str) -> str:
    from node.storage import store

    c = await n.node.db.read(lambda conn: store.get_connection(conn, cid))
    assert c is not None
    return c.closing_note


async def test_a_refusal_is_taken_once_and_kept_in_words(three) -> None:
    """12.5: connection-refuse moves a requested connection to refused; a repeat is a
    duplicate; a reason other than 'declined' is kept as its code and what it means."""
    agency, broker, outsider, cid = three
    asked = await outsider.api("POST", "/api/v1/connections", {"url": broker.url, "email": "admin@broker.example"})
    pending = asked["connection"]["id"]
    await wait_for(lambda: _state_is(broker, pending, "requested"))
    hostile = Hostile(broker, outsider)
    refuse = {"connection_id": pending, "reason": "unknown_user", "message": ""}
    first = await post(outsider, hostile.envelope(refuse, "connection-refuse/1.0"))
    assert first.status == 200 and await connection_state(outsider, pending) == "refused"
    assert await _closing_note(outsider, pending) == (
        "unknown_user: no active user there has the email the request named; ask their admin which to use")
    again = hostile.envelope(refuse, "connection-refuse/1.0")
    answer = await post(outsider, again)
    assert answer.status == 200, answer.body
    assert verify_receipt(answer.body, keys=keys_of(outsider), envelope_sha256=digest(again)).disposition.value \
        == "duplicate"
    # the refusing node's own words, when it gives them, are kept with the code
    asked = await outsider.api("POST", "/api/v1/connections", {"url": broker.url, "email": "admin@broker.example"})
    second = asked["connection"]["id"]
    await wait_for(lambda: _state_is(broker, second, "requested"))
    worded = {"connection_id": second, "reason": "expired", "message": "asked too long ago"}
    assert (await post(outsider, hostile.envelope(worded, "connection-refuse/1.0"))).status == 200
    assert await _closing_note(outsider, second) == "expired: asked too long ago"


async def test_a_disconnect_is_taken_once(three) -> None:
    agency, broker, outsider, cid = three
    hostile = Hostile(agency, broker)
    bye = {"connection_id": cid, "reason": "closing"}
    assert (await post(broker, hostile.envelope(bye, "disconnect/1.0"))).status == 200
    assert await connection_state(broker, cid) == "disconnected"
    assert await _closing_note(broker, cid) == "closing"
    again = hostile.envelope(bye, "disconnect/1.0")
    answer = await post(broker, again)
    assert answer.status == 200, answer.body
    assert verify_receipt(answer.body, keys=keys_of(broker), envelope_sha256=digest(again)).disposition.value \
        == "duplicate"


async def test_a_key_rotation_never_rolls_back_to_an_older_key_set(three) -> None:
    """4.9: a key-rotation carrying an older discovery document of the sender changes
    nothing (duplicate); the newer one is kept."""
    agency, broker, outsider, cid = three
    old_document = agency.node.discovery.decode()
    old_kid = agency.node.keys.signing.kid
    # a discovery document's issued_at has whole seconds: the new one must be a later second
    await asyncio.sleep(1.1)
    await agency.api("POST", "/api/v1/keys/rotate")
    new_kid = agency.node.keys.signing.kid
    assert new_kid != old_kid
    await wait_for(lambda: _pinned(broker, agency.node.me, new_kid))
    before = await snapshot(broker)
    stale = Hostile(agency, broker).envelope({"discovery": old_document}, "key-rotation/1.0")
    answer = await post(broker, stale)
    assert answer.status == 200, answer.body
    assert verify_receipt(answer.body, keys=keys_of(broker), envelope_sha256=digest(stale)).disposition.value \
        == "duplicate"
    assert new_kid in broker.node.peers[agency.node.me].signing
    after = await snapshot(broker)
    assert before["peers"] == after["peers"] and before["peer_keys"] == after["peer_keys"]
    # the pinned document itself (the same issued_at) is applied again, not taken as older
    again = Hostile(agency, broker).envelope({"discovery": agency.node.discovery.decode()}, "key-rotation/1.0",
                                             envelope_id="env_rotation_again")
    answer = await post(broker, again)
    assert answer.status == 200, answer.body
    assert verify_receipt(answer.body, keys=keys_of(broker), envelope_sha256=digest(again)).disposition.value \
        == "accepted"
    assert new_kid in broker.node.peers[agency.node.me].signing
    # 12.2: nor does a connection-request from the known peer that carries its older
    # document: the request is taken, and the newer key set stays pinned
    before = await snapshot(broker)
    request = {"connection_id": "con_olderdoc", "requester_discovery": old_document, "direction": "send",
               "target_email": "admin@broker.example", "requested_by": {"name": "Ava", "email": "ava@agency.example"}}
    answer = await post(broker, Hostile(agency, broker).envelope(request, "connection-request/1.0",
                                                                 envelope_id="env_request_olderdoc"))
    assert answer.status == 200, answer.body
    assert await connection_state(broker, "con_olderdoc") == "requested"
    assert new_kid in broker.node.peers[agency.node.me].signing
    after = await snapshot(broker)
    assert before["peers"] == after["peers"] and before["peer_keys"] == after["peer_keys"]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_confirm_for_a_connection_already_active_is_a_duplicate(shared_three) -> None:
    """12.1: connection-confirm moves a connection to active; once there, another confirm
    (a new envelope, so not a replay) changes nothing and is answered duplicate, on either side."""
    agency, broker, outsider, cid = shared_three
    for sender, receiver in ((agency, broker), (broker, agency)):
        again = Hostile(sender, receiver).envelope({"connection_id": cid}, "connection-confirm/1.0",
                                                   envelope_id=f"env_confirm_again_{sender.name.lower()}")
        answer = await post(receiver, again)
        assert answer.status == 200, answer.body
        receipt = verify_receipt(answer.body, keys=keys_of(receiver), envelope_sha256=digest(again))
        assert receipt.disposition.value == "duplicate"
        assert await connection_state(receiver, cid) == "active"


@pytest.mark.asyncio(loop_scope="module")
async def test_a_request_sent_again_in_a_new_envelope_is_a_duplicate(shared_three) -> None:
    """12.1: a connection-request for a connection the receiver already holds, as responder,
    with that sender (a new envelope, so not a replay) changes nothing and is answered
    duplicate, not refused as a connection id taken."""
    agency, broker, outsider, cid = shared_three
    again = Hostile(agency, broker).envelope(request(Hostile(agency, broker), cid), "connection-request/1.0",
                                             envelope_id="env_request_again")
    answer = await post(broker, again)
    assert answer.status == 200, answer.body
    receipt = verify_receipt(answer.body, keys=keys_of(broker), envelope_sha256=digest(again))
    assert receipt.disposition.value == "duplicate"
    assert await connection_state(broker, cid) == "active"


async def _pinned(n: RunningNode, peer: str, kid: str) -> bool:
    keys = n.node.peers.get(peer)
    return keys is not None and kid in keys.signing


async def test_a_request_refused_outright_ends_the_requesters_connection_saying_why(three) -> None:
    """The requester's side of 12.2: a connection-request answered unknown_user is not
    retried; the connection is refused, and its note says what the code means."""
    agency, broker, outsider, cid = three
    asked = await outsider.api("POST", "/api/v1/connections", {"url": broker.url, "email": "nobody@broker.example"})
    pending = asked["connection"]["id"]
    await wait_for(lambda: _state_is(outsider, pending, "refused"))
    assert await _closing_note(outsider, pending) == (
        "unknown_user: no active user there has the email the request named; ask their admin which to use")
    # the agency's live connection to the broker is untouched by it
    assert await connection_state(agency, cid) == "active"


async def test_an_offer_from_a_requester_whose_confirmation_is_late_counts_as_it(three) -> None:
    """12.1: a responder still waiting for connection-confirm takes an offer from the
    requester as the confirmation (the requester is active once it saw the accept)."""
    agency, broker, outsider, cid = three
    made = await broker.api("POST", "/api/v1/invitations", {"name": "Outsider"})
    invitation = parse_referral(made["referral_url"], made["referral_key"])
    hostile = Hostile(outsider, broker)
    # the outsider's node has no record of this request, so the broker's accept never
    # lands there and no confirmation comes: the broker's connection stays responded
    redeem = hostile.envelope(request(hostile, "con_late", target_email=DROP,
                                      invitation={"invitation_id": invitation.invitation_id,
                                                  "secret": invitation.secret}), "connection-request/1.0")
    assert (await post(broker, redeem)).status == 200
    assert await connection_state(broker, "con_late") == "responded"
    answer = await post(broker, hostile.envelope(offer("con_late", referral_id="rfl_late")))
    assert answer.status == 200, answer.body
    assert await connection_state(broker, "con_late") == "active"
    received = await broker.api("GET", "/api/v1/referrals?side=receiver")
    assert "rfl_late" in {r["id"] for r in received["referrals"]}


@pytest.mark.parametrize(("answer", "note"), [
    ((400, b'{"error": {"code": "malformed", "message": "no"}}'), "their node refused the request (malformed)"),
    ((503, b'{"error": {"code": "unavailable", "message": "later"}}'),
     "the request could not be delivered before its deadline (HTTP 503)"),
], ids=["refused with a code of no words", "deadline passed"])
async def test_a_request_that_ends_without_an_answer_in_words_keeps_why(node_factory, answer, note) -> None:
    """A connection-request refused for good with a code that has no words of its own, or
    never delivered before its deadline (3 days: the clock is moved on), leaves the
    requester's connection refused with a note that says which. The broker is replaced, on
    its address, by a fake that serves its real discovery document and answers as told."""
    clock = FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    broker = await node_factory("Broker")
    discovery, port = broker.node.discovery, broker.config.port
    await broker.stop()
    agency = await node_factory("Agency", start=False)
    await agency.start(clock=clock)
    async with FakePeer(port, lambda _: answer, discovery=discovery):
        asked = await agency.api("POST", "/api/v1/connections", {"url": broker.url, "email": "bree@broker.example"})
        cid = asked["connection"]["id"]
        if answer[0] == 503:
            await wait_for(lambda: _last_error_is(agency, cid, "HTTP 503"))
            clock.advance(3 * 24 * 3600 + 1)
        await wait_for(lambda: _state_is(agency, cid, "refused"))
    assert await _closing_note(agency, cid) == note


async def _last_error_is(n: RunningNode, cid: str, error: str) -> bool:
    items = (await n.api("GET", f"/api/v1/outbox?subject_id={cid}"))["outbox"]
    return [i["last_error"] for i in items] == [error]
