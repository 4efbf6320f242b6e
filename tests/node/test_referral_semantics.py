"""What a referral means to the people who send and receive it (issue: workflows, owners,
consent, notes, closed loop): real nodes on 127.0.0.1, driven through the admin API."""

from __future__ import annotations

import base64
import json
from typing import Any

from conftest import RunningNode, wait_for
from test_two_nodes import connect_by_invitation

from node.storage import store

DISCLOSURE = "We share your details with our partner broker so they can contact you about a loan."


def consent(*contact_ids: str) -> dict[str, Any]:
    return {"contact_ids": list(contact_ids), "method": "verbal", "disclosure_version": "privacy-2026-07",
            "disclosure_text": DISCLOSURE}


async def user(node: RunningNode, email: str, name: str, role: str = "broker") -> str:
    return (await node.api("POST", "/api/v1/users", {"email": email, "name": name, "role": role}, expect=201))["user"]["id"]


async def admin_id(node: RunningNode) -> str:
    users = (await node.api("GET", "/api/v1/users"))["users"]
    return next(u["id"] for u in users if u["role"] == "admin")


async def workflow(node: RunningNode, name: str, owner: str, stages: list[str]) -> dict[str, Any]:
    body = {"name": name, "owner_user_id": owner, "stage_names": stages}
    return (await node.api("POST", "/api/v1/workflows", body, expect=201))["workflow"]


async def client_deal(node: RunningNode, wf: dict[str, Any], owner: str, **extra: Any) -> tuple[str, str]:
    contact = (await node.api("POST", "/api/v1/contacts", {
        "first_name": "Jo", "last_name": "Citizen", "email": "jo@example.com", "phone": "+61 400 000 000",
        "date_of_birth": "1988-04-02", "custom_fields": {"favourite_colour": "teal"},
    }, expect=201))["contact"]
    deal = (await node.api("POST", "/api/v1/deals", {
        "title": "Purchase at 12 Harbour St", "amount": "650000.00", "currency": "AUD",
        "workflow_id": wf["id"], "stage_id": wf["stages"][0]["id"], "owner_user_id": owner,
        "custom_fields": {"commission_split": "60/40"}, "labels": ["vip"],
        "contacts": [{"contact_id": contact["id"], "role": "primary"}], **extra,
    }, expect=201))["deal"]
    await node.api("POST", f"/api/v1/deals/{deal['id']}/notes", {"body": "Client is anxious about rates."}, expect=201)
    await node.api("POST", f"/api/v1/deals/{deal['id']}/documents",
                   {"name": "payslip.pdf", "label": "Payslip", "size_bytes": 12345,
                    "sha256": "a" * 64}, expect=201)
    return deal["id"], contact["id"]


async def received_referrals(node: RunningNode) -> list[dict[str, Any]]:
    return (await node.api("GET", "/api/v1/referrals?side=receiver"))["referrals"]


async def outbox_count(node: RunningNode) -> int:
    return len((await node.api("GET", "/api/v1/outbox"))["outbox"])


def inner_payload(inner_jws: bytes) -> dict[str, Any]:
    payload = inner_jws.split(b".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))


async def setup_pair(node_factory: Any) -> tuple[RunningNode, RunningNode, str]:
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    return agency, broker, cid


async def test_consent_is_required_and_nothing_leaves(node_factory):
    agency, broker, cid = await setup_pair(node_factory)
    owner = await admin_id(agency)
    wf = await workflow(agency, "Sales", owner, ["Lead", "Offer", "Sold"])
    deal_id, _ = await client_deal(agency, wf, owner)
    before = await outbox_count(agency)
    answer = await agency.api("POST", f"/api/v1/deals/{deal_id}/refer", {"connection_id": cid}, expect=400)
    assert answer["error"]["code"] == "consent_required"
    assert "consent" in answer["error"]["message"] and answer["error"]["field"] == "consent"
    assert await outbox_count(agency) == before
    assert (await agency.api("GET", "/api/v1/referrals"))["referrals"] == []


async def test_only_the_chosen_fields_travel_and_notes_on_both_sides(node_factory):
    agency, broker, cid = await setup_pair(node_factory)
    owner = await admin_id(agency)
    wf = await workflow(agency, "Sales", owner, ["Lead", "Offer", "Sold"])
    deal_id, contact_id = await client_deal(agency, wf, owner)
    # The connection may share names and email only; asking for the phone is refused.
    await agency.api("PUT", f"/api/v1/connections/{cid}/settings", {"outbound": {
        "referral_type": "mortgage",
        "allowed_fields": ["deal.title", "deal.amount", "contacts.first_name", "contacts.last_name", "contacts.email"],
    }})
    refused = await agency.api("POST", f"/api/v1/deals/{deal_id}/refer", {
        "connection_id": cid, "referring_agent_user_id": owner, "shared_fields": ["deal.title", "contacts.phone"], "consent": consent(contact_id),
    }, expect=400)
    assert refused["error"]["code"] == "field_not_allowed" and "contacts.phone" in refused["error"]["message"]

    sent = await agency.api("POST", f"/api/v1/deals/{deal_id}/refer", {
        "connection_id": cid, "referring_agent_user_id": owner, "shared_fields": ["deal.title", "contacts.first_name", "contacts.email"],
        "message": "Please call Jo after 5pm.", "consent": consent(contact_id),
    }, expect=202)
    local_id = sent["referral"]["local_id"]
    await wait_for(lambda: _has_received(broker))

    inner = await broker.node.db.read(lambda c: c.execute(
        "SELECT inner FROM inbox WHERE type LIKE 'referral-offer/%'").fetchone()[0])
    payload = inner_payload(inner)
    text = json.dumps(payload)
    for secret in ("teal", "favourite_colour", "commission_split", "60/40", "payslip", "anxious", "vip",
                   "+61 400", "1988-04-02", "Citizen", "650000"):
        assert secret not in text, secret
    assert payload["contacts"] == [{"ref": contact_id, "role": "primary", "first_name": "Jo", "email": "jo@example.com"}]
    assert payload["deal"] == {"title": "Purchase at 12 Harbour St"}
    assert payload["shared_fields"] == ["contacts.email", "contacts.first_name", "deal.title"]
    assert payload["consent"]["disclosure_version"] == "privacy-2026-07"

    # Notes: on the deal and the contact at the sender, on the new deal at the receiver.
    deal_notes = (await agency.api("GET", f"/api/v1/deals/{deal_id}/notes"))["notes"]
    contact_notes = (await agency.api("GET", f"/api/v1/contacts/{contact_id}/notes"))["notes"]
    assert any(n["kind"] == "referral" and "Referred to" in n["body"] for n in deal_notes)
    assert any(n["kind"] == "referral" and "Referred to" in n["body"] for n in contact_notes)
    new_deal = (await received_referrals(broker))[0]["deal_id"]
    broker_notes = (await broker.api("GET", f"/api/v1/deals/{new_deal}/notes"))["notes"]
    assert any("Please call Jo after 5pm." in n["body"] for n in broker_notes)
    # The receiver's deal has no custom fields, labels or documents from the sender.
    landed = (await broker.api("GET", f"/api/v1/deals/{new_deal}"))["deal"]
    assert landed["custom_fields"] == {} and landed["labels"] == []
    assert (await broker.api("GET", f"/api/v1/deals/{new_deal}/documents"))["documents"] == []

    # Recall is refused, and changes nothing.
    answer = await agency.api("DELETE", f"/api/v1/referrals/{local_id}", expect=409)
    assert "cannot be recalled" in answer["error"]["message"]
    assert len(await received_referrals(broker)) == 1


async def _has_received(node: RunningNode, count: int = 1) -> bool:
    return len(await received_referrals(node)) >= count


async def test_a_settings_update_changes_only_what_it_names(node_factory):
    agency, broker, cid = await setup_pair(node_factory)
    path = f"/api/v1/connections/{cid}/settings"
    narrow = ["deal.title", "contacts.first_name", "contacts.last_name"]
    await agency.api("PATCH", path, {"outbound": {"name": "Harbour", "allowed_fields": narrow}})
    # Only the inbound folder is sent: the outbound side keeps what a client may share.
    for method in ("PATCH", "PUT"):
        answer = (await agency.api(method, path, {"inbound": {"folder": f"x-{method}"}}))["settings"]
        assert answer["inbound"]["folder"] == f"x-{method}"
        assert answer["outbound"]["allowed_fields"] == narrow and answer["outbound"]["name"] == "Harbour"
    stored = (await agency.api("GET", path))["settings"]
    assert stored["outbound"]["allowed_fields"] == narrow and stored["inbound"]["folder"] == "x-PUT"
    # A list sent replaces the list; a refused change leaves everything as it was.
    await agency.api("PATCH", path, {"outbound": {"allowed_fields": ["deal.title"]}})
    await agency.api("PATCH", path, {"inbound": {"workflow_id": "wf_nope"}, "outbound": {"name": "Y"}}, expect=404)
    stored = (await agency.api("GET", path))["settings"]
    assert stored["outbound"] == {**stored["outbound"], "allowed_fields": ["deal.title"], "name": "Harbour"}


async def test_owner_rules(node_factory):
    agency, broker, cid = await setup_pair(node_factory)
    a_owner = await admin_id(agency)
    b_admin = await admin_id(broker)
    # The agency's deal owner also works at the broker (same email): the match rule finds her.
    shared_email = "casey@both.example"
    casey_a = await user(agency, shared_email, "Casey")
    casey_b = await user(broker, shared_email, "Casey B")
    bree = await user(broker, "bree@broker.example", "Bree")
    bo = await user(broker, "bo@broker.example", "Bo")
    wf_a = await workflow(agency, "Sales", a_owner, ["Lead", "Sold"])
    wf_b = await workflow(broker, "Home loans", b_admin, ["New", "Lodged", "Settled"])

    async def refer_one(owner_user: str) -> str:
        deal_id, contact_id = await client_deal(agency, wf_a, owner_user)
        count = len(await received_referrals(broker)) + 1  # before: it may arrive at once
        await agency.api("POST", f"/api/v1/deals/{deal_id}/refer",
                         {"connection_id": cid, "referring_agent_user_id": a_owner, "consent": consent(contact_id)}, expect=202)
        await wait_for(lambda: _has_received(broker, count))
        latest = max((await received_referrals(broker)), key=lambda r: r["created_at"] + r["local_id"])
        return (await broker.api("GET", f"/api/v1/deals/{latest['deal_id']}"))["deal"]["owner_user_id"]

    async def set_rule(**assignment: Any) -> None:
        await broker.api("PUT", f"/api/v1/connections/{cid}/settings", {"inbound": {
            "workflow_id": wf_b["id"], "stage_id": wf_b["stages"][1]["id"], "folder": "Agency leads",
            "source": "Harbour Realty", "assignment": assignment}})

    await set_rule(rule="match_owner")
    assert await refer_one(casey_a) == casey_b  # same email: the original owner
    assert await refer_one(a_owner) == b_admin  # no such user: the workflow owner
    await set_rule(rule="round_robin", user_ids=[bree, bo])
    spread = [await refer_one(a_owner) for _ in range(4)]
    assert spread == [bree, bo, bree, bo]
    await set_rule(rule="fixed", user_id=bo)
    assert await refer_one(casey_a) == bo
    # All landed in the chosen workflow, stage, folder and source.
    for r in await received_referrals(broker):
        deal = (await broker.api("GET", f"/api/v1/deals/{r['deal_id']}"))["deal"]
        assert deal["workflow_id"] == wf_b["id"] and deal["stage_id"] == wf_b["stages"][1]["id"]
        assert deal["folder"] == "Agency leads" and deal["source"] == "Harbour Realty"
    # Settings naming another workflow's stage are refused.
    other = await workflow(broker, "Insurance", b_admin, ["New"])
    bad = await broker.api("PUT", f"/api/v1/connections/{cid}/settings", {"inbound": {
        "workflow_id": wf_b["id"], "stage_id": other["stages"][0]["id"]}}, expect=400)
    assert bad["error"]["field"] == "inbound.stage_id"


async def test_deferred_referral_waits_for_its_stage_and_can_be_cancelled(node_factory):
    agency, broker, cid = await setup_pair(node_factory)
    owner = await admin_id(agency)
    wf = await workflow(agency, "Sales", owner, ["Applicant", "Inspected", "Offer accepted", "Sold"])
    deal_id, contact_id = await client_deal(agency, wf, owner)
    offer_stage = wf["stages"][2]["id"]
    waiting = await agency.api("POST", f"/api/v1/deals/{deal_id}/refer", {
        "connection_id": cid, "referring_agent_user_id": owner, "consent": consent(contact_id), "when_stage_id": offer_stage}, expect=201)
    assert waiting["deferred"]["state"] == "waiting"
    assert (await agency.api("GET", "/api/v1/referrals"))["referrals"] == []
    # A second deal whose deferred referral is cancelled never goes.
    deal2, contact2 = await client_deal(agency, wf, owner)
    cancelled = await agency.api("POST", f"/api/v1/deals/{deal2}/refer", {
        "connection_id": cid, "referring_agent_user_id": owner, "consent": consent(contact2), "when_stage_id": offer_stage}, expect=201)
    await agency.api("POST", f"/api/v1/deferred/{cancelled['deferred']['id']}/cancel")
    again = await agency.api("POST", f"/api/v1/deferred/{cancelled['deferred']['id']}/cancel", expect=409)
    assert again["error"]["code"] == "invalid_transition"

    await agency.api("POST", f"/api/v1/deals/{deal_id}/move", {"stage_id": wf["stages"][1]["id"]})  # not yet
    await agency.api("POST", f"/api/v1/deals/{deal2}/move", {"stage_id": offer_stage})
    assert (await agency.api("GET", "/api/v1/referrals"))["referrals"] == []
    # The deal skips the stage it waited for: a later stage sends it too.
    await agency.api("POST", f"/api/v1/deals/{deal_id}/move", {"stage_id": wf["stages"][3]["id"]})
    sent = (await agency.api("GET", "/api/v1/referrals"))["referrals"]
    assert len(sent) == 1 and sent[0]["deal_id"] == deal_id
    await wait_for(lambda: _has_received(broker))
    deferred = {d["id"]: d["state"] for d in (await agency.api("GET", "/api/v1/deferred"))["deferred"]}
    assert deferred == {waiting["deferred"]["id"]: "sent", cancelled["deferred"]["id"]: "cancelled"}
    assert len(await received_referrals(broker)) == 1


async def test_a_deferred_referral_that_can_no_longer_fire_says_so(node_factory):
    agency, broker, cid = await setup_pair(node_factory)
    owner = await admin_id(agency)
    wf = await workflow(agency, "Sales", owner, ["Applicant", "Offer accepted", "Sold"])
    other = await workflow(agency, "Rentals", owner, ["Enquiry", "Leased"])
    deal_id, contact_id = await client_deal(agency, wf, owner)
    # Not for a stage the deal is at or has passed.
    await agency.api("POST", f"/api/v1/deals/{deal_id}/move", {"stage_id": wf["stages"][1]["id"]})
    for stage in wf["stages"][:2]:
        refused = await agency.api("POST", f"/api/v1/deals/{deal_id}/refer", {
            "connection_id": cid, "referring_agent_user_id": owner, "consent": consent(contact_id), "when_stage_id": stage["id"]}, expect=400)
        assert refused["error"]["field"] == "when_stage_id"
    waiting = (await agency.api("POST", f"/api/v1/deals/{deal_id}/refer", {
        "connection_id": cid, "referring_agent_user_id": owner, "consent": consent(contact_id), "when_stage_id": wf["stages"][2]["id"]},
        expect=201))["deferred"]
    assert waiting["can_fire"] is True and waiting["blocked"] is None
    # The deal leaves for another workflow: its stage can never come.
    await agency.api("POST", f"/api/v1/deals/{deal_id}/move",
                     {"workflow_id": other["id"], "stage_id": other["stages"][1]["id"]})
    listed = (await agency.api("GET", "/api/v1/deferred"))["deferred"]
    assert [(d["id"], d["state"], d["can_fire"]) for d in listed] == [(waiting["id"], "waiting", False)]
    assert "another workflow" in listed[0]["blocked"]
    assert (await agency.api("GET", "/api/v1/referrals"))["referrals"] == []
    # The stage it waits for is deleted (it holds no deal): still listed, and says why.
    await agency.api("DELETE", f"/api/v1/stages/{wf['stages'][2]['id']}")
    listed = (await agency.api("GET", "/api/v1/deferred"))["deferred"]
    assert [(d["id"], d["can_fire"]) for d in listed] == [(waiting["id"], False)]
    assert "deleted" in listed[0]["blocked"]


async def test_status_flows_back_in_order_exactly_once_across_a_restart(node_factory):
    agency, broker, cid = await setup_pair(node_factory)
    owner = await admin_id(agency)
    wf = await workflow(agency, "Sales", owner, ["Lead", "Sold"])
    b_admin = await admin_id(broker)
    wf_b = await workflow(broker, "Home loans", b_admin, ["New", "Contacted", "Lodged", "Settled"])
    await broker.api("PUT", f"/api/v1/connections/{cid}/settings", {"inbound": {"workflow_id": wf_b["id"]}})
    deal_id, contact_id = await client_deal(agency, wf, owner)
    sent = await agency.api("POST", f"/api/v1/deals/{deal_id}/refer",
                            {"connection_id": cid, "referring_agent_user_id": owner, "consent": consent(contact_id)}, expect=202)
    local_id = sent["referral"]["local_id"]
    await wait_for(lambda: _has_received(broker))
    theirs = (await received_referrals(broker))[0]

    # The agency goes down; the broker works the deal meanwhile.
    await agency.stop()
    await broker.api("POST", f"/api/v1/deals/{theirs['deal_id']}/move", {"stage_id": wf_b["stages"][1]["id"]})
    await broker.api("POST", f"/api/v1/deals/{theirs['deal_id']}/move", {"stage_id": wf_b["stages"][2]["id"]})
    await broker.api("POST", f"/api/v1/referrals/{theirs['local_id']}/status", {"status": "won"})
    # The broker restarts too, with everything still queued in its outbox.
    await broker.stop()
    await broker.start()
    await agency.start()

    async def won() -> bool:
        return (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["referral"]["state"] == "won"

    await wait_for(won, within_s=30)
    timeline = (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["timeline"]
    assert [(e["seq"], e["status"], e["stage"]) for e in timeline] == [
        (1, "accepted", "Contacted"), (2, "in-progress", "Contacted"), (3, "in-progress", "Lodged"), (4, "won", None)]
    # Deliver the whole stream again: nothing is applied twice.
    items = await broker.node.db.read(lambda c: [i for i in store.list_outbox(c) if i.type.startswith("referral-status")])
    for item in items:
        result = await agency.node.receive(item.body)
        assert result.error is None
    timeline2 = (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["timeline"]
    assert timeline2 == timeline
    notes = (await agency.api("GET", f"/api/v1/deals/{deal_id}/notes"))["notes"]
    assert sum("reports the referral" in n["body"] for n in notes) == 4


async def test_status_updates_delivered_out_of_order_apply_in_order(node_factory):
    agency, broker, cid = await setup_pair(node_factory)
    owner = await admin_id(agency)
    wf = await workflow(agency, "Sales", owner, ["Lead", "Sold"])
    deal_id, contact_id = await client_deal(agency, wf, owner)
    sent = await agency.api("POST", f"/api/v1/deals/{deal_id}/refer",
                            {"connection_id": cid, "referring_agent_user_id": owner, "consent": consent(contact_id)}, expect=202)
    local_id = sent["referral"]["local_id"]
    await wait_for(lambda: _has_received(broker))
    theirs = (await received_referrals(broker))[0]["local_id"]
    await agency.stop()  # the updates queue up at the broker
    for status in ("accepted", "in-progress", "won"):
        await broker.api("POST", f"/api/v1/referrals/{theirs}/status", {"status": status})
    bodies = await broker.node.db.read(
        lambda c: [i.body for i in sorted(store.list_outbox(c), key=lambda i: i.seq) if i.type.startswith("referral-status")])
    assert len(bodies) == 3
    await agency.start()
    # Newest first: the later updates are held until the first arrives.
    for body in reversed(bodies):
        assert (await agency.node.receive(body)).error is None
        await agency.node.receive(body)  # and each twice
    timeline = (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["timeline"]
    assert [(e["seq"], e["status"], e["applied"]) for e in timeline] == [
        (1, "accepted", True), (2, "in-progress", True), (3, "won", True)]
    assert (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["referral"]["state"] == "won"


async def test_a_stage_that_means_won_reports_won_not_progress(node_factory):
    agency, broker, cid = await setup_pair(node_factory)
    owner = await admin_id(agency)
    wf = await workflow(agency, "Sales", owner, ["Lead", "Sold"])
    b_admin = await admin_id(broker)
    wf_b = (await broker.api("POST", "/api/v1/workflows", {
        "name": "Home loans", "owner_user_id": b_admin, "stage_names": ["New", "Lodged", "Settled", "Not proceeding"],
        "outcomes": {"settled": "won", "Not proceeding": "lost"}}, expect=201))["workflow"]
    assert [s["outcome"] for s in wf_b["stages"]] == [None, None, "won", "lost"]
    await broker.api("PATCH", f"/api/v1/connections/{cid}/settings", {"inbound": {"workflow_id": wf_b["id"]}})
    deal_id, contact_id = await client_deal(agency, wf, owner)
    local_id = (await agency.api("POST", f"/api/v1/deals/{deal_id}/refer",
                                 {"connection_id": cid, "referring_agent_user_id": owner, "consent": consent(contact_id)}, expect=202))["referral"]["local_id"]
    await wait_for(lambda: _has_received(broker))
    theirs = (await received_referrals(broker))[0]
    await broker.api("POST", f"/api/v1/deals/{theirs['deal_id']}/move", {"stage_id": wf_b["stages"][1]["id"]})
    await broker.api("POST", f"/api/v1/deals/{theirs['deal_id']}/move", {"stage_id": wf_b["stages"][2]["id"]})

    async def won() -> bool:
        return (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["referral"]["state"] == "won"

    await wait_for(won)
    timeline = (await agency.api("GET", f"/api/v1/referrals/{local_id}"))["timeline"]
    assert [(e["status"], e["stage"]) for e in timeline] == [
        ("accepted", "Lodged"), ("in-progress", "Lodged"), ("won", "Settled")]
    # The outcome can be set or cleared later; a stage without one is progress again.
    cleared = await broker.api("PATCH", f"/api/v1/stages/{wf_b['stages'][2]['id']}", {"outcome": None})
    assert cleared["workflow"]["stages"][2]["outcome"] is None
