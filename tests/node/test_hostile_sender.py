"""Every receiver-side check of docs/protocol.md section 8.5, tripped by a hostile sender.

Each case breaks exactly one thing in an envelope from a connected peer (tests/hostile.py)
and posts it to a real node, which must refuse it with the check's code, with a signed
``rejected`` receipt exactly when the outer signature was verified (section 9.3), and
store nothing. The unbroken envelope is accepted (the first case), so each refusal is
the one break's doing. Introductions (8.6) and the checks after the envelope opens are
in test_hostile_lifecycle.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from conftest import RunningNode
from hostile import DROP, Hostile, fresh_key, post, refused, signed_compact
from test_two_nodes import CONSENT, connect_by_invitation

from protocol.encoding import b64u_decode, b64u_encode, dumps_canonical
from protocol.envelope import digest
from protocol.keys import DecryptionKey
from protocol.models import format_ts
from protocol.receipts import verify_receipt
from protocol.suites import SuiteId, hpke_info
from protocol.wire import INBOX_PATH, MEDIA_TYPE_JOSE_JSON

#: A node id nobody has (the thumbprint form: 43 base64url characters).
NOBODY = b64u_encode(b"\x01" * 32)
#: An encryption key of nobody's.
STRANGER_KEY = DecryptionKey.x25519(b"\x02" * 32).public


def offer(connection_id: str, **changes: Any) -> dict[str, Any]:
    """A referral offer as JSON, keeping every rule; ``changes`` replace members (DROP removes)."""
    body: dict[str, Any] = {
        "referral_id": "rfl_hostile1",
        "connection_id": connection_id,
        "referral_type": "mortgage",
        "deal": {"title": "Refinance", "amount": "420000", "currency": "AUD"},
        "contacts": [{"ref": "c1", "role": "primary", "first_name": "Sam", "last_name": "Lee"}],
        "shared_fields": ["contacts.first_name", "contacts.last_name", "deal.amount", "deal.title"],
        "referring_agent": {"name": "Ava Agent", "email": "ava@agency.example"},
        "consent": CONSENT,
        "sent_at": "2026-11-23T00:00:00Z",
    }
    for name, value in changes.items():
        if value is DROP:
            body.pop(name)
        else:
            body[name] = value
    return body


def noncanonical(text: str) -> str:
    """The same base64url text with stray low bits in its last character (or, where the
    length leaves none, one character too many)."""
    if len(text) % 4 in (0, 1):
        return text + "A"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return text[:-1] + alphabet[alphabet.index(text[-1]) | 1]


def short_signature(jws_text: bytes) -> bytes:
    """A compact JWS whose signature is 63 bytes."""
    head, body, sig = jws_text.split(b".")
    return b".".join([head, body, b64u_encode(b64u_decode(sig)[:63]).encode()])


def edit(**members: Any) -> Callable[[dict[str, Any]], None]:
    def change(envelope: dict[str, Any]) -> None:
        for name, value in members.items():
            if callable(value):
                envelope[name] = value(envelope[name])
            else:
                envelope[name] = value

    return change


@pytest.fixture
async def pair(node_factory: Any) -> tuple[Hostile, str, RunningNode]:
    """An agency connected to a broker (which receives referrals from it), and a hostile
    sender with the agency's keys."""
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    return Hostile(agency, broker), cid, broker


Case = tuple[Callable[[Hostile, str], bytes], int, str, bool]

#: check (docs/protocol.md 8.5) -> (build the envelope, status, code, receipt expected)
CASES: dict[str, Case] = {
    # parse: no key is used yet, so no receipt
    "1 too large": (lambda h, c: b'{"payload":"' + b"A" * 1_048_576 + b'"}', 413, "too_large", False),
    "1 exactly the limit, read": (lambda h, c: b'{"payload":"' + b"A" * (1_048_576 - 14) + b'"}', 400, "malformed",
                                  False),
    "2a body not JSON": (lambda h, c: b"{not json", 400, "malformed", False),
    "2a body not an object": (lambda h, c: b"[]", 400, "malformed", False),
    "2b an extra member": (lambda h, c: h.envelope(offer(c), edit=edit(header={})), 400, "malformed", False),
    "2b a member not a string": (lambda h, c: h.envelope(offer(c), edit=edit(signature=5)), 400, "malformed", False),
    "2b a member missing": (lambda h, c: h.envelope(offer(c), edit=lambda e: e.pop("payload")), 400, "malformed",
                            False),
    "2c protected not base64url": (lambda h, c: h.envelope(offer(c), edit=edit(protected=noncanonical)), 400,
                                   "malformed", False),
    "2c protected not an object": (lambda h, c: h.envelope(offer(c), edit=edit(protected=b64u_encode(b"[1]"))), 400,
                                   "malformed", False),
    "2c protected with a repeated member": (
        lambda h, c: h.envelope(offer(c), edit=edit(protected=b64u_encode(b'{"alg":"Ed25519","alg":"Ed25519"}'))),
        400, "malformed", False),
    "2d alg": (lambda h, c: h.envelope(offer(c), outer={"alg": "EdDSA"}), 400, "malformed", False),
    "2d kid not a string": (lambda h, c: h.envelope(offer(c), outer={"kid": 7}), 400, "malformed", False),
    "2d typ": (lambda h, c: h.envelope(offer(c), outer={"typ": "JWT"}), 400, "malformed", False),
    "2d crit": (lambda h, c: h.envelope(offer(c), outer={"crit": ["rn_v"]}), 400, "malformed", False),
    "2e signature not canonical": (lambda h, c: h.envelope(offer(c), edit=edit(signature=noncanonical)), 400,
                                   "malformed", False),
    "2f signature of 63 bytes": (
        lambda h, c: h.envelope(offer(c), edit=edit(signature=lambda s: b64u_encode(b64u_decode(s)[:63]))),
        401, "bad_signature", False),
    "2g payload not canonical": (lambda h, c: h.envelope(offer(c), edit=edit(payload=noncanonical)), 400,
                                 "malformed", False),
    "3a rn_v a boolean": (lambda h, c: h.envelope(offer(c), outer={"rn_v": True}), 400, "malformed", False),
    "3a rn_v a string": (lambda h, c: h.envelope(offer(c), outer={"rn_v": "1"}), 400, "malformed", False),
    "3b rn_v 2": (lambda h, c: h.envelope(offer(c), outer={"rn_v": 2}), 400, "unsupported_version", False),
    "3c an extra header member": (lambda h, c: h.envelope(offer(c), outer={"rn_note": "x"}), 400, "malformed",
                                  False),
    "3c a header member missing": (lambda h, c: h.envelope(offer(c), outer={"rn_enc_kid": DROP}), 400,
                                   "malformed", False),
    "3c rn_iat not a real time": (lambda h, c: h.envelope(offer(c), outer={"rn_iat": "2026-02-30T00:00:00Z"}), 400,
                                  "malformed", False),
    "4a rn_type without a version": (lambda h, c: h.envelope(offer(c), "referral-offer"), 400, "malformed", False),
    "4b rn_type of major 2": (lambda h, c: h.envelope(offer(c), "referral-offer/2.0"), 400, "unsupported_version",
                              False),
    "4c rn_type unknown": (lambda h, c: h.envelope(offer(c), "gossip/1.0"), 400, "unsupported_type", False),
    # authenticate
    "5 unknown sender": (lambda h, c: h.envelope(offer(c), outer={"rn_from": NOBODY}, inner={"rn_from": NOBODY}),
                         403, "unknown_sender", False),
    "6a outer kid the identity key": (
        lambda h, c: h.envelope(offer(c), outer={"kid": h.identity.kid}, outer_key=h.identity),
        401, "unknown_key", False),
    "6a outer kid unknown": (
        lambda h, c: h.envelope(offer(c), outer={"kid": fresh_key("6a").kid}, outer_key=fresh_key("6a")),
        401, "unknown_key", False),
    "6b outer signature by another key": (lambda h, c: h.envelope(offer(c), outer_key=fresh_key("6b")), 401,
                                          "bad_signature", False),
    "6b outer signature over other bytes": (
        lambda h, c: h.envelope(offer(c), edit=edit(payload=lambda p: b64u_encode(b64u_decode(p) + b"\0"))),
        401, "bad_signature", False),
    # address and time: the sender is authenticated from here on, so a receipt comes back
    "7a another recipient": (lambda h, c: h.envelope(offer(c), outer={"rn_to": NOBODY}, inner={"rn_to": NOBODY}),
                             400, "wrong_recipient", True),
    "7b from the future": (lambda h, c: h.envelope(offer(c), age_s=-301), 400, "not_yet_valid", True),
    "7c too old": (lambda h, c: h.envelope(offer(c), age_s=604_801), 400, "expired", True),
    # decrypt
    "8a unknown suite": (lambda h, c: h.envelope(offer(c), outer={"rn_suite": "ROT13"}), 400, "unsupported_suite",
                         True),
    "8b unknown encryption key": (lambda h, c: h.envelope(offer(c), outer={"rn_enc_kid": NOBODY}), 401,
                                  "unknown_key", True),
    "9 sealed to another key": (
        lambda h, c: h.envelope(offer(c), seal_to=STRANGER_KEY, outer={"rn_enc_kid": h.encryption_key().kid}),
        400, "decrypt_failed", True),
    "9 sealed for another envelope": (
        lambda h, c: h.envelope(offer(c), info=hpke_info(h.me, h.target.node.me, "env_another")),
        400, "decrypt_failed", True),
    "9 a key that does not fit the suite": (
        lambda h, c: h.envelope(offer(c), outer={"rn_suite": next(s for s in SuiteId if s is not SuiteId.X25519_CHACHA).value}),
        400, "decrypt_failed", True),
    "10a plaintext of two parts": (lambda h, c: h.envelope(offer(c), plaintext=b"abc.def"), 400, "malformed", True),
    "10a plaintext not ASCII": (lambda h, c: h.envelope(offer(c), plaintext="é.é.é".encode()), 400, "malformed",
                                True),
    "10a inner typ": (lambda h, c: h.envelope(offer(c), inner={"typ": "refnode-envelope+jws"}), 400, "malformed",
                      True),
    "10a inner alg": (lambda h, c: h.envelope(offer(c), inner={"alg": "none"}), 400, "malformed", True),
    "10a inner signature of 63 bytes": (lambda h, c: h.envelope(offer(c), plaintext=short_inner(h, c)), 401,
                                        "bad_signature", True),
    "10b inner header with rn_v": (lambda h, c: h.envelope(offer(c), inner={"rn_v": 1}), 400, "malformed", True),
    "10b inner header without rn_iat": (lambda h, c: h.envelope(offer(c), inner={"rn_iat": DROP}), 400,
                                        "malformed", True),
    # the inner routing fields repeat the outer ones
    "11 inner rn_id": (lambda h, c: h.envelope(offer(c), inner={"rn_id": "env_other"}), 401, "bad_signature", True),
    "11 inner rn_type": (lambda h, c: h.envelope(offer(c), inner={"rn_type": "referral-status/1.0"}), 401,
                         "bad_signature", True),
    "11 inner rn_from": (lambda h, c: h.envelope(offer(c), inner={"rn_from": NOBODY}), 401, "bad_signature", True),
    "11 inner rn_to": (lambda h, c: h.envelope(offer(c), inner={"rn_to": NOBODY}), 401, "bad_signature", True),
    "11 inner rn_iat": (lambda h, c: h.envelope(offer(c), inner={"rn_iat": "2026-01-01T00:00:00Z"}), 401,
                        "bad_signature", True),
    "11 rn_reply_to inside only": (lambda h, c: h.envelope(offer(c), inner={"rn_reply_to": "env_x"}), 401,
                                   "bad_signature", True),
    "11 rn_reply_to outside only": (lambda h, c: h.envelope(offer(c), outer={"rn_reply_to": "env_x"}), 401,
                                    "bad_signature", True),
    "12a inner kid unknown": (
        lambda h, c: h.envelope(offer(c), inner={"kid": fresh_key("12a").kid}, inner_key=fresh_key("12a")),
        401, "unknown_key", True),
    "12a inner kid the identity key": (
        lambda h, c: h.envelope(offer(c), inner={"kid": h.identity.kid}, inner_key=h.identity),
        401, "unknown_key", True),
    "12b inner signature by another key": (lambda h, c: h.envelope(offer(c), inner_key=fresh_key("12b")), 401,
                                           "bad_signature", True),
    "13a payload not an object": (lambda h, c: h.envelope(offer(c), payload=b"[]"), 400, "malformed", True),
    "13a payload with a repeated member": (
        lambda h, c: h.envelope(offer(c), payload=b'{"referral_id":"a","referral_id":"a"}'),
        400, "malformed", True),
    "13b an unknown member": (lambda h, c: h.envelope(offer(c, extra="x")), 400, "malformed", True),
    "13b a member missing": (lambda h, c: h.envelope(offer(c, referral_type=DROP)), 400, "malformed", True),
    "13b a member of the wrong type": (lambda h, c: h.envelope(offer(c, contacts="Sam")), 400, "malformed", True),
}


def short_inner(h: Hostile, cid: str) -> bytes:
    """The inner JWS that ``h.envelope`` seals next for ``cid``'s offer, with a signature
    of 63 bytes: its routing repeats the outer one, so only the signature is wrong."""
    now = h.sender.node.clock.now()
    routing = {"rn_id": f"env_hostile{h._count + 1:04d}", "rn_type": "referral-offer/1.0", "rn_from": h.me,
               "rn_to": h.target.node.me, "rn_iat": format_ts(now)}
    return short_signature(signed_compact({"typ": "refnode-message+jws", "alg": "Ed25519", "kid": h.signing.kid,
                                           **routing}, dumps_canonical(offer(cid)), h.signing))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_pair(module_node_factory: Any) -> tuple[Hostile, str, RunningNode]:
    """As ``pair``, one for all the refusals: each checks its own against a snapshot."""
    agency = await module_node_factory("Agency")
    broker = await module_node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    return Hostile(agency, broker), cid, broker


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("check", list(CASES))
async def test_each_check_of_8_5_refuses_with_its_code_and_stores_nothing(shared_pair, check: str) -> None:
    hostile, cid, broker = shared_pair
    build, status, code, receipt = CASES[check]
    answer = await refused(broker, build(hostile, cid), status=status, code=code, receipt=receipt)
    if code in ("unsupported_version", "unsupported_type", "unsupported_suite"):
        assert answer.json["error"]["detail"]["supported"], answer.json
    if check.startswith("13b"):
        assert answer.json["error"]["detail"]["errors"], answer.json


async def test_the_unbroken_envelope_is_accepted(pair) -> None:
    """The builder with no break writes an envelope a node accepts: every refusal above
    is its one break's doing."""
    hostile, cid, broker = pair
    body = hostile.envelope(offer(cid))
    answer = await post(broker, body)
    assert (answer.status, answer.content_type) == (200, MEDIA_TYPE_JOSE_JSON), answer.body
    receipt = verify_receipt(answer.body, keys=hostile.target_keys, envelope_id=hostile_id(body),
                             envelope_sha256=digest(body), sender=hostile.me)
    assert receipt.disposition.value == "accepted"
    received = await broker.api("GET", "/api/v1/referrals?side=receiver")
    assert [r["id"] for r in received["referrals"]] == ["rfl_hostile1"]
    # the referral keeps the envelope that brought it (its receipt and evidence point to it)
    kept = await broker.node.db.read(lambda conn: conn.execute(
        "SELECT envelope_id, last_seq FROM referrals WHERE id = 'rfl_hostile1' AND side = 'receiver'").fetchone())
    assert tuple(kept) == (hostile_id(body), 0)


async def test_a_newer_minor_may_carry_members_this_node_does_not_know(pair) -> None:
    """13b: unknown members are dropped, not refused, when rn_type's minor is newer."""
    hostile, cid, broker = pair
    answer = await post(broker, hostile.envelope(offer(cid, extra="from 1.9"), "referral-offer/1.9"))
    assert answer.status == 200, answer.body
    received = await broker.api("GET", "/api/v1/referrals?side=receiver")
    assert "extra" not in received["referrals"][0]["offer"]


async def test_the_time_window_holds_just_inside_its_bounds(pair) -> None:
    """7b, 7c: 299 s ahead and 7 days less a minute old are accepted."""
    hostile, cid, broker = pair
    for age_s, rid in ((-299, "rfl_ahead"), (604_800 - 60, "rfl_old")):
        answer = await post(broker, hostile.envelope(offer(cid, referral_id=rid), age_s=age_s))
        assert answer.status == 200, (age_s, answer.body)


async def test_a_body_without_a_length_is_refused_past_the_nodes_limit_while_it_streams(pair) -> None:
    """1: a chunked body (no Content-Length to check first) is cut off once it passes the
    node's envelope limit, and the refusal names that limit: not the larger one the node
    allows other requests (an envelope plus 64 KiB)."""
    _, _, broker = pair

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(17):
            yield b"A" * 65_536
        yield b"A"

    async with aiohttp.ClientSession() as session:
        async with session.post(broker.url + INBOX_PATH, data=chunks(),
                                headers={"Content-Type": MEDIA_TYPE_JOSE_JSON}) as r:
            status, answer = r.status, await r.json()
    assert (status, answer["error"]) == (413, {"code": "too_large", "message": "the limit is 1048576 bytes"})


def hostile_id(body: bytes) -> str:
    import json

    return json.loads(b64u_decode(json.loads(body)["protected"]))["rn_id"]


def test_the_cases_name_every_check_of_8_5() -> None:
    """One case at least for each numbered check of the table."""
    steps = {case.split(" ")[0] for case in CASES}
    assert steps == {"1", "2a", "2b", "2c", "2d", "2e", "2f", "2g", "3a", "3b", "3c", "4a", "4b", "4c", "5", "6a", "6b",
                     "7a", "7b", "7c", "8a", "8b", "9", "10a", "10b", "11", "12a", "12b", "13a", "13b"}
