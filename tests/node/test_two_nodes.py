"""Two real nodes on 127.0.0.1 connect (by invitation and by request) and refer a deal."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from conftest import RunningNode, wait_for

from node.storage import store
from protocol.discovery import verify_discovery
from protocol.encoding import b64u_decode
from protocol.receipts import verify_receipt

CONSENT = {
    "contact_refs": ["c1"],
    "consented_at": "2026-11-20T10:00:00Z",
    "method": "verbal",
    "disclosure_version": "privacy-2026-07",
    "disclosure_sha256": "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg",
    "recorded_by": {"name": "Ava Agent", "email": "ava@agency.example"},
}


def referral_body(connection_id: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "connection_id": connection_id,
        "referral_type": "mortgage",
        "deal": {"title": "Purchase at 12 Harbour St", "amount": "650000.00", "currency": "AUD"},
        "contacts": [{"ref": "c1", "first_name": "Jo", "last_name": "Citizen", "email": "jo@example.com"}],
        "shared_fields": ["deal.title", "deal.amount", "contacts.first_name", "contacts.last_name", "contacts.email"],
        "referring_agent": {"name": "Ava Agent", "email": "ava@agency.example"},
        "message": "Pre-approved elsewhere; wants a better rate.",
        "consent": CONSENT,
    }
    body.update(overrides)
    return body


async def connect_by_invitation(a: RunningNode, b: RunningNode) -> tuple[str, str]:
    """b invites a; a connects. Returns (connection id, a's view state)."""
    invite = await b.api("POST", "/api/v1/invitations", {"name": a.name, "direction": "receive"})
    result = await a.api("POST", "/api/v1/connections",
                         {"referral_url": invite["referral_url"], "referral_key": invite["referral_key"]})
    cid = result["connection"]["id"]

    async def both_active() -> bool:
        conns_a = (await a.api("GET", "/api/v1/connections"))["connections"]
        conns_b = (await b.api("GET", "/api/v1/connections"))["connections"]  # b may not have it yet
        return any(c["id"] == cid and c["state"] == "active" for c in conns_a) and any(
            c["id"] == cid and c["state"] == "active" for c in conns_b)

    await wait_for(both_active)
    return cid, result["peer_fingerprint"]


async def reply_to(node: RunningNode, envelope_id: str) -> str | None:
    """The rn_reply_to of an envelope ``node`` sent, as its outer header carries it."""
    body = await node.node.db.read(lambda c: c.execute("SELECT body FROM outbox WHERE envelope_id = ?",
                                                       (envelope_id,)).fetchone()[0])
    header = json.loads(b64u_decode(json.loads(body)["protected"]))
    return header.get("rn_reply_to")


async def test_invitation_handshake_and_referral_with_receipt(node_factory):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, fingerprint = await connect_by_invitation(agency, broker)
    broker_info = await broker.api("GET", "/api/v1/node")
    assert fingerprint == broker_info["fingerprint"]
    conns = await broker.api("GET", "/api/v1/connections")
    assert conns["connections"][0]["peer_fingerprint"] == (await agency.api("GET", "/api/v1/node"))["fingerprint"]
    # What the responder keeps: the invitation redeemed and who asked for the connection;
    # the invitation, used now, names the connection it made and when.
    (held,) = conns["connections"]
    (invitation,) = (await broker.api("GET", "/api/v1/invitations"))["invitations"]
    assert (held["invitation_id"], held["requested_by"]) == (invitation["id"], "admin@agency.example")
    assert (invitation["state"], invitation["connection_id"]) == ("used", cid) and invitation["used_at"]
    # Each side's outbox lists the handshake's envelopes under the connection, and each
    # answer names the envelope it answers (rn_reply_to, docs/protocol.md 12.5). Newest first.
    sent = {n.name: (await n.api("GET", f"/api/v1/outbox?subject_id={cid}"))["outbox"] for n in (agency, broker)}
    kinds = {name: [(i["type"], i["subject_kind"]) for i in items] for name, items in sent.items()}
    assert kinds == {"Agency": [("connection-confirm/1.0", "connection"), ("connection-request/1.0", "connection")],
                     "Broker": [("connection-accept/1.0", "connection")]}
    (confirm_id, request_id), (accept_id,) = ([i["envelope_id"] for i in sent[n]] for n in ("Agency", "Broker"))
    assert await reply_to(broker, accept_id) == request_id
    assert await reply_to(agency, confirm_id) == accept_id

    body = referral_body(cid)
    body["referring_agent"] = {"name": "Agency Admin", "email": "admin@agency.example"}  # a user here
    sent = await agency.api("POST", "/api/v1/referrals", body, expect=202)
    local_id = sent["referral"]["local_id"]

    async def delivered() -> bool:
        r = await agency.api("GET", f"/api/v1/referrals/{local_id}")
        return r["referral"]["state"] == "delivered"

    await wait_for(delivered)
    received = await broker.api("GET", "/api/v1/referrals?side=receiver")
    assert len(received["referrals"]) == 1
    assert received["referrals"][0]["offer"]["deal"]["title"] == "Purchase at 12 Harbour St"
    # the deal's owner at the broker is told by mail, naming the sender as its connection does
    (named,) = (await broker.api("GET", "/api/v1/connections"))["connections"]
    subjects = await broker.node.db.read(lambda c: [r[0] for r in c.execute(
        "SELECT subject FROM mail_queue WHERE kind = 'new_referral'")])
    assert len(subjects) == 1 and subjects[0].endswith(f" referral from {named['name']}"), (subjects, named["name"])

    # The receipt verifies with the broker's key as published in its discovery document.
    items = await agency.node.db.read(lambda c: store.list_outbox(c, state="delivered"))
    offer_item = next(i for i in items if i.type.startswith("referral-offer/"))
    _, broker_keys = verify_discovery(broker.node.discovery, expected_node_id=broker.node.me)
    receipt = verify_receipt(offer_item.receipt, keys=broker_keys, envelope_id=offer_item.envelope_id,
                             envelope_sha256=offer_item.sha256, sender=agency.node.me)
    assert receipt.disposition.value == "accepted"
    check = await agency.api("POST", "/api/v1/receipts/verify")
    assert check["checked"] >= 2 and check["invalid"] == []

    # Closed loop: the broker accepts and wins; the agency sees the timeline.
    broker_ref = received["referrals"][0]["local_id"]
    await broker.api("POST", f"/api/v1/referrals/{broker_ref}/status", {"status": "accepted"})
    await broker.api("POST", f"/api/v1/referrals/{broker_ref}/status", {"status": "won"})

    async def won() -> bool:
        r = await agency.api("GET", f"/api/v1/referrals/{local_id}")
        return r["referral"]["state"] == "won"

    await wait_for(won)
    timeline = (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["timeline"]
    assert [e["status"] for e in timeline] == ["accepted", "won"]
    # the referring agent is told by mail what each update says
    told = await agency.node.db.read(lambda c: [r[0] for r in c.execute(
        "SELECT text_body FROM mail_queue WHERE kind = 'status_update' AND to_addr = 'admin@agency.example'")])
    assert "won" in " ".join(told) and "accepted" in " ".join(told), told


async def test_connection_request_to_a_user(node_factory):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    await broker.api("POST", "/api/v1/users", {"email": "bree@broker.example", "name": "Bree", "role": "broker"},
                     expect=201)
    bad = await agency.api("POST", "/api/v1/connections", {"url": broker.url, "email": "nobody@broker.example"},
                           expect=202)

    async def refused() -> bool:
        out = await agency.api("GET", "/api/v1/outbox?state=failed")
        return any(i["envelope_id"] and i["last_error"] == "unknown_user" for i in out["outbox"])

    await wait_for(refused)
    assert bad["connection"]["state"] == "requested"
    after = await agency.api("GET", f"/api/v1/connections/{bad['connection']['id']}")
    assert after["connection"]["state"] == "refused"

    asked = await agency.api("POST", "/api/v1/connections",
                             {"url": broker.url, "email": "bree@broker.example", "direction": "send"}, expect=202)
    cid = asked["connection"]["id"]

    async def pending_at_broker() -> bool:
        conns = (await broker.api("GET", "/api/v1/connections"))["connections"]
        return any(c["id"] == cid and c["state"] == "requested" for c in conns)

    await wait_for(pending_at_broker)
    pending = (await broker.api("GET", f"/api/v1/connections/{cid}"))["connection"]
    assert (pending["target_email"], pending["invitation_id"]) == ("bree@broker.example", None)
    # Meanwhile the broker's organisation is renamed, and the agency's node goes down: the
    # acceptance waits in the broker's outbox, its last error the network's.
    await agency.stop()
    await broker.stop()
    broker.config = broker.config.model_copy(update={"org_name": "Broker Renamed"})
    await broker.start()
    await broker.api("POST", f"/api/v1/connections/{cid}/accept")

    async def unreachable() -> bool:
        (item,) = (await broker.api("GET", f"/api/v1/outbox?subject_id={cid}"))["outbox"]
        return item["state"] == "pending" and item["last_error"] is not None

    await wait_for(unreachable)
    (item,) = (await broker.api("GET", f"/api/v1/outbox?subject_id={cid}"))["outbox"]
    assert item["last_error"] == "network: ClientConnectorError"
    await agency.start()

    async def active() -> bool:
        a = (await agency.api("GET", f"/api/v1/connections/{cid}"))["connection"]
        b = (await broker.api("GET", f"/api/v1/connections/{cid}"))["connection"]
        return a["state"] == "active" and b["state"] == "active"

    await wait_for(active)
    conn = (await agency.api("GET", f"/api/v1/connections/{cid}"))["connection"]
    # the direction and the name the acceptance gives (not the name known when asking)
    assert (conn["direction"], conn["name"]) == ("send", "Broker Renamed")


async def test_key_rotation_is_announced_and_old_receipts_still_verify(node_factory):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    first = await agency.api("POST", "/api/v1/referrals", referral_body(cid, referral_id="rfl_before"), expect=202)

    async def delivered(local_id: str) -> bool:
        return (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["referral"]["state"] == "delivered"

    await wait_for(lambda: delivered(first["referral"]["local_id"]))
    old_kid = broker.node.keys.signing.kid
    rotated = await broker.api("POST", "/api/v1/keys/rotate")
    assert rotated["peers_notified"] == 1 and rotated["signing_kid"] != old_kid

    async def agency_knows_new_key() -> bool:
        keys = agency.node.peers[broker.node.me]
        return rotated["signing_kid"] in keys.signing and old_kid not in keys.signing

    await wait_for(agency_knows_new_key)
    # New receipts are signed with the new key; the old receipt still verifies offline.
    second = await agency.api("POST", "/api/v1/referrals", referral_body(cid, referral_id="rfl_after"), expect=202)
    await wait_for(lambda: delivered(second["referral"]["local_id"]))
    check = await agency.api("POST", "/api/v1/receipts/verify")
    assert check["invalid"] == [] and check["checked"] >= 3


async def test_revoked_expired_and_used_invitations_are_refused(node_factory):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    revoked = await broker.api("POST", "/api/v1/invitations", {"name": "Agency"}, expect=201)
    await broker.api("POST", f"/api/v1/invitations/{revoked['invitation']['id']}/revoke")
    expiring = await broker.api("POST", "/api/v1/invitations", {"name": "Agency", "ttl_s": 1}, expect=201)
    used = await broker.api("POST", "/api/v1/invitations", {"name": "Agency"}, expect=201)
    await asyncio.sleep(1.2)

    async def refused_with(invite: dict[str, Any]) -> str:
        result = await agency.api("POST", "/api/v1/connections", {
            "referral_url": invite["referral_url"], "referral_key": invite["referral_key"]}, expect=202)
        cid = result["connection"]["id"]

        async def settled() -> bool:
            state = (await agency.api("GET", f"/api/v1/connections/{cid}"))["connection"]["state"]
            return state in ("refused", "active")

        await wait_for(settled)
        state = (await agency.api("GET", f"/api/v1/connections/{cid}"))["connection"]["state"]
        if state == "active":
            return "active"
        out = (await agency.api("GET", "/api/v1/outbox?state=failed"))["outbox"]
        return next(i["last_error"] for i in out if i["subject_id"] == cid)

    assert await refused_with(revoked) == "invitation_revoked"
    assert await refused_with(expiring) == "invitation_expired"
    assert await refused_with(used) == "active"
    assert await refused_with(used) == "invitation_used"
    # A wrong key for a real invitation is refused too, and does not use it up.
    fresh = await broker.api("POST", "/api/v1/invitations", {"name": "Agency"}, expect=201)
    wrong = dict(fresh, referral_key="rnk1_" + "A" * 43)
    assert await refused_with(wrong) == "invitation_invalid"
    states = {i["id"]: i["state"] for i in (await broker.api("GET", "/api/v1/invitations"))["invitations"]}
    assert states[fresh["invitation"]["id"]] == "open"
    assert states[used["invitation"]["id"]] == "used"


async def test_a_decline_message_and_a_disconnect_reason_reach_the_other_organisation(node_factory):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    await broker.api("POST", "/api/v1/users", {"email": "bree@broker.example", "name": "Bree", "role": "broker"},
                     expect=201)
    asked = await agency.api("POST", "/api/v1/connections",
                             {"url": broker.url, "email": "bree@broker.example", "direction": "send"}, expect=202)
    cid = asked["connection"]["id"]

    async def state_at(node: Any, state: str) -> bool:
        conns = (await node.api("GET", "/api/v1/connections"))["connections"]
        return any(c["id"] == cid and c["state"] == state for c in conns)

    await wait_for(lambda: state_at(broker, "requested"))
    note = "We only take referrals from licensed agencies."
    await broker.api("POST", f"/api/v1/connections/{cid}/decline", {"message": note})
    await wait_for(lambda: state_at(agency, "refused"))
    for node in (agency, broker):  # both admins see why
        shown = (await node.api("GET", f"/api/v1/connections/{cid}"))["connection"]
        assert shown["closing_note"] == note

    cid, _ = await connect_by_invitation(agency, broker)
    reason = "Our office in Harbour closes on Friday."
    await agency.api("POST", f"/api/v1/connections/{cid}/disconnect", {"reason": reason})
    await wait_for(lambda: state_at(broker, "disconnected"))
    for node in (agency, broker):
        shown = (await node.api("GET", f"/api/v1/connections/{cid}"))["connection"]
        assert shown["state"] == "disconnected" and shown["closing_note"] == reason
