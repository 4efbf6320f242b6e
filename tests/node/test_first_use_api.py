"""What a new user met (issue 11, "found by a new user"), at the admin API and in the
configuration: real nodes on 127.0.0.1 with their own databases. The same through the
``refnode`` command is in test_first_use_cli.py."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conftest import RunningNode, make_config, wait_for
from test_referral_semantics import admin_id, client_deal, consent, setup_pair, user, workflow
from test_two_nodes import connect_by_invitation

from node.base.clock import FakeClock
from node.base.config import load_config
from node.cli.setup import init_node


async def _outbox_item(node: RunningNode, subject_id: str) -> dict[str, Any]:
    """The one outbox item about a connection or referral."""
    items = [i for i in (await node.api("GET", "/api/v1/outbox"))["outbox"] if i["subject_id"] == subject_id]
    assert len(items) == 1, items
    return items[0]


# --- item 10: the public URL follows the port unless it was set on purpose --------------


def test_the_public_url_follows_the_port_unless_it_was_chosen(tmp_path: Path) -> None:
    config = make_config(tmp_path, "Summit", port=8701)
    init_node(config, admin_email="admin@summit.example", admin_name="Admin")
    written = config.config_path.read_text()
    assert "\npublic_url" not in written  # only the commented-out example
    moved = load_config(config.config_path, {"REFNODE_PORT": "18801"})
    assert (moved.port, moved.public_url) == (18801, "http://127.0.0.1:18801")

    # A file written by an older init, holding exactly what host and port make, follows too.
    old = tmp_path / "old.toml"
    old.write_text('port = 8701\npublic_url = "http://127.0.0.1:8701"\n')
    assert load_config(old, {"REFNODE_PORT": "18802"}).public_url == "http://127.0.0.1:18802"
    # One set on purpose stays, whatever the port.
    chosen = tmp_path / "chosen.toml"
    chosen.write_text('port = 8701\npublic_url = "https://refer.summit.example"\n')
    assert load_config(chosen, {"REFNODE_PORT": "18803"}).public_url == "https://refer.summit.example"
    assert load_config(old, {"REFNODE_PORT": "18804", "REFNODE_PUBLIC_URL": "https://x.example"}).public_url == (
        "https://x.example")


# --- item 16: the referring agent is chosen on purpose ---------------------------------


async def test_an_admin_must_name_the_referring_agent_and_a_broker_is_it_by_default(node_factory):
    agency, broker, cid = await setup_pair(node_factory)
    admin = await admin_id(agency)
    wf = await workflow(agency, "Sales", admin, ["Lead", "Sold"])
    deal_id, contact_id = await client_deal(agency, wf, admin)
    body = {"connection_id": cid, "consent": consent(contact_id)}
    refused = await agency.api("POST", f"/api/v1/deals/{deal_id}/refer", body, expect=400)
    assert refused["error"]["field"] == "referring_agent_user_id"
    assert "commission credit" in refused["error"]["message"]
    assert (await agency.api("GET", "/api/v1/referrals"))["referrals"] == []  # nothing left

    ava = await user(agency, "ava@agency.example", "Ava Agent")
    sent = await agency.api("POST", f"/api/v1/deals/{deal_id}/refer", body | {"referring_agent_user_id": ava},
                            expect=202)
    assert sent["referral"]["offer"]["referring_agent"] == {"name": "Ava Agent", "email": "ava@agency.example"}

    # A broker referring their own deal is the agent when they name none.
    token = (await agency.api("POST", "/api/v1/tokens", {"user_id": ava}, expect=201))["token"]
    deal2, contact2 = await client_deal(agency, wf, ava)
    mine = await agency.api("POST", f"/api/v1/deals/{deal2}/refer", {"connection_id": cid, "consent": consent(contact2)},
                            token=token, expect=202)
    assert mine["referral"]["offer"]["referring_agent"]["email"] == "ava@agency.example"


# --- item 17: the same deal twice to the same connection --------------------------------


async def test_a_deal_live_at_a_connection_is_referred_there_again_only_on_purpose(node_factory):
    agency, broker, cid = await setup_pair(node_factory)
    admin = await admin_id(agency)
    wf = await workflow(agency, "Sales", admin, ["Lead", "Offer", "Sold"])
    deal_id, contact_id = await client_deal(agency, wf, admin)
    body = {"connection_id": cid, "referring_agent_user_id": admin, "consent": consent(contact_id)}
    first = (await agency.api("POST", f"/api/v1/deals/{deal_id}/refer", body, expect=202))["referral"]

    twice = await agency.api("POST", f"/api/v1/deals/{deal_id}/refer", body, expect=409)
    assert twice["error"]["code"] == "already_referred" and twice["error"]["field"] == "again"
    assert first["local_id"] in twice["error"]["message"]
    assert twice["error"]["detail"] == {"earlier": first["local_id"]}
    deferred = await agency.api("POST", f"/api/v1/deals/{deal_id}/refer",
                                body | {"when_stage_id": wf["stages"][2]["id"]}, expect=409)
    assert deferred["error"]["code"] == "already_referred"
    assert len((await agency.api("GET", "/api/v1/referrals"))["referrals"]) == 1

    again = (await agency.api("POST", f"/api/v1/deals/{deal_id}/refer", body | {"again": True}, expect=202))["referral"]
    assert again["local_id"] != first["local_id"]

    # Once the receiver has declined both, the deal may go there again without saying so.
    async def both_received() -> bool:
        return len((await broker.api("GET", "/api/v1/referrals?side=receiver"))["referrals"]) == 2

    await wait_for(both_received)
    for r in (await broker.api("GET", "/api/v1/referrals?side=receiver"))["referrals"]:
        await broker.api("POST", f"/api/v1/referrals/{r['local_id']}/status", {"status": "declined"})

    async def declined() -> bool:
        sent = (await agency.api("GET", "/api/v1/referrals"))["referrals"]
        return {r["state"] for r in sent} == {"declined"}

    await wait_for(declined)
    await agency.api("POST", f"/api/v1/deals/{deal_id}/refer", body, expect=202)


# --- item 17: the referral note once ---------------------------------------------------


async def test_a_referred_deal_carries_its_referral_note_once(node_factory):
    agency, broker, cid = await setup_pair(node_factory)
    admin = await admin_id(agency)
    wf = await workflow(agency, "Sales", admin, ["Lead", "Sold"])
    deal_id, contact_id = await client_deal(agency, wf, admin)
    await agency.api("POST", f"/api/v1/deals/{deal_id}/refer",
                     {"connection_id": cid, "referring_agent_user_id": admin, "consent": consent(contact_id),
                      "message": "Call after 5pm."}, expect=202)
    on_deal = [n for n in (await agency.api("GET", f"/api/v1/deals/{deal_id}/notes"))["notes"]
               if n["kind"] == "referral"]
    assert len(on_deal) == 1 and "Call after 5pm." in on_deal[0]["body"]
    on_contact = [n for n in (await agency.api("GET", f"/api/v1/contacts/{contact_id}/notes"))["notes"]
                  if n["kind"] == "referral"]
    assert len(on_contact) == 1 and "Purchase at 12 Harbour St" in on_contact[0]["body"]


# --- items 13 and 17: refused connection requests are final and explained ---------------


async def test_a_refused_request_is_final_explained_and_not_retried(node_factory):
    agency, broker = await node_factory("Agency"), await node_factory("Broker")
    asked = await agency.api("POST", "/api/v1/connections", {"url": broker.url, "email": "nobody@broker.example"},
                             expect=202)
    cid = asked["connection"]["id"]

    async def refused() -> bool:
        c = (await agency.api("GET", f"/api/v1/connections/{cid}"))["connection"]
        return c["state"] == "refused"

    await wait_for(refused)
    connection = (await agency.api("GET", f"/api/v1/connections/{cid}"))["connection"]
    assert connection["closing_note"].startswith("unknown_user: no active user there has the email")
    item = await _outbox_item(agency, cid)
    assert (item["state"], item["last_error"]) == ("failed", "unknown_user")
    assert (await agency.api("GET", f"/api/v1/outbox?subject_id={cid}"))["outbox"] == [item]

    retry = await agency.api("POST", f"/api/v1/outbox/{item['seq']}/retry", expect=409)
    assert retry["error"]["code"] == "refused_by_peer"
    assert "unknown_user" in retry["error"]["message"] and "new invitation or request" in retry["error"]["message"]
    assert (await _outbox_item(agency, cid))["state"] == "failed"  # unchanged


async def test_a_wrong_referral_key_ends_in_a_refused_connection_that_says_why(node_factory):
    agency, broker = await node_factory("Agency"), await node_factory("Broker")
    invite = await broker.api("POST", "/api/v1/invitations", {"name": "Agency"})
    wrong = "rnk1_" + "A" * 43
    started = await agency.api("POST", "/api/v1/connections",
                               {"referral_url": invite["referral_url"], "referral_key": wrong}, expect=202)
    cid = started["connection"]["id"]

    async def settled() -> bool:
        return (await agency.api("GET", f"/api/v1/connections/{cid}"))["connection"]["state"] != "requested"

    await wait_for(settled)
    connection = (await agency.api("GET", f"/api/v1/connections/{cid}"))["connection"]
    assert connection["state"] == "refused"
    assert connection["closing_note"].startswith("invitation_invalid: their node does not recognise this referral key")
    item = await _outbox_item(agency, cid)
    retry = await agency.api("POST", f"/api/v1/outbox/{item['seq']}/retry", expect=409)
    assert retry["error"]["code"] == "refused_by_peer"
    # The broker kept nothing of it, and its invitation is still open for the right key.
    assert (await broker.api("GET", "/api/v1/connections"))["connections"] == []
    assert (await broker.api("GET", "/api/v1/invitations"))["invitations"][0]["state"] == "open"


async def test_a_retry_signed_with_a_retired_key_is_refused_once_the_peer_knows(node_factory):
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))  # both nodes share it
    agency, broker = await node_factory("Agency", start=False), await node_factory("Broker", start=False)
    for n in (agency, broker):
        await n.start(clock=clock)
    cid, _ = await connect_by_invitation(agency, broker)
    admin = await admin_id(agency)
    wf = await workflow(agency, "Sales", admin, ["Lead", "Sold"])
    deal_id, contact_id = await client_deal(agency, wf, admin)
    await broker.stop()
    sent = (await agency.api("POST", f"/api/v1/deals/{deal_id}/refer", {
        "connection_id": cid, "referring_agent_user_id": admin, "consent": consent(contact_id)}, expect=202))["referral"]

    async def failed() -> bool:
        return (await _outbox_item(agency, sent["local_id"]))["state"] == "failed"

    clock.advance(3 * 24 * 3600 + 10)  # past the delivery deadline: the item fails
    await wait_for(failed)
    await broker.start(clock=clock)
    clock.advance(10)  # past the backoff of the last failed attempt
    assert (await agency.api("POST", "/api/v1/keys/rotate"))["peers_notified"] == 1

    async def rotation_delivered() -> bool:
        items = (await agency.api("GET", "/api/v1/outbox"))["outbox"]
        return any(i["type"].startswith("key-rotation/") and i["state"] == "delivered" for i in items)

    await wait_for(rotation_delivered)
    seq = (await _outbox_item(agency, sent["local_id"]))["seq"]
    retry = await agency.api("POST", f"/api/v1/outbox/{seq}/retry", expect=409)
    assert retry["error"]["code"] == "retired_key" and retry["error"]["field"] == "seq"
    assert "retired" in retry["error"]["message"]
    assert (await _outbox_item(agency, sent["local_id"]))["state"] == "failed"


# --- item 17: a damaged referral URL ------------------------------------------------------


async def test_a_damaged_referral_url_says_what_one_looks_like(node_factory):
    agency, broker = await node_factory("Agency"), await node_factory("Broker")
    invite = await broker.api("POST", "/api/v1/invitations", {"name": "Agency"})
    cut = invite["referral_url"][:-5]  # the node id, cut short
    answer = await agency.api("POST", "/api/v1/connections",
                              {"referral_url": cut, "referral_key": invite["referral_key"]}, expect=403)
    message = answer["error"]["message"]
    assert answer["error"]["code"] == "invitation_invalid"
    assert "its node id (after ?node=) is cut short or changed" in message
    assert "looks like https://their-node.example/refnode/v1/invitations/inv_...?node=..." in message
    assert "pattern" not in message and "^" not in message and "[A-Za-z" not in message
