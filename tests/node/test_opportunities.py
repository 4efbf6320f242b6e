"""Referral opportunities (Street: "Saving the Referral as an Opportunity"): recording why a
deal was not referred, the follow-up list, closing, and turning an opportunity into a
referral that reaches the other node. Real nodes on 127.0.0.1, driven through the admin
API; the CRM data they work on is set up with the CRM store inside the node's own
transactions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import RunningNode, wait_for
from test_two_nodes import connect_by_invitation

from node.base.clock import FakeClock
from node.crm import store as crm
from node.crm.models import ContactIn, DealContact, DealIn, Note, WorkflowIn

START = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
DISCLOSURE = "We share your details with our partner broker so they can contact you about a loan."


def consent(*contact_ids: str) -> dict[str, Any]:
    return {"contact_ids": list(contact_ids), "method": "verbal", "disclosure_version": "privacy-2026-07",
            "disclosure_text": DISCLOSURE}


async def started(node_factory: Any, name: str, clock: FakeClock | None = None) -> RunningNode:
    running = await node_factory(name, start=False)
    await running.start(clock=clock)
    return running


async def client_deal(n: RunningNode, title: str = "Purchase at 12 Harbour St",
                      contacts: int = 1) -> tuple[str, list[str]]:
    """A deal in the node's "Sales" workflow with ``contacts`` clients on it."""

    def make(conn: Any, ctx: Any) -> tuple[str, list[str]]:
        admin = next(u for u in crm.list_users(conn) if u.role == "admin")
        wf = crm.find_workflow_by_name(conn, "Sales") or crm.create_workflow(
            conn, WorkflowIn(name="Sales", owner_user_id=admin.id, stage_names=["Applicant", "Offer accepted"]),
            now=ctx.now)
        ids = [crm.create_contact(conn, ContactIn(first_name=f"Jo{i}", last_name="Citizen",
                                                  email=f"jo{i}@example.com"), now=ctx.now).id
               for i in range(contacts)]
        deal = crm.create_deal(conn, DealIn(
            title=title, workflow_id=wf.id, stage_id=wf.stages[0].id, owner_user_id=admin.id,
            contacts=[DealContact(contact_id=c) for c in ids]), now=ctx.now)
        return deal.id, ids

    return await n.node.transact(make)


async def stage_id(n: RunningNode, name: str) -> str:
    wf = await n.node.db.read(lambda conn: crm.find_workflow_by_name(conn, "Sales"))
    assert wf is not None
    stage = wf.stage_named(name)
    assert stage is not None
    return stage.id


async def deal_notes(n: RunningNode, deal_id: str, contact_id: str | None = None) -> list[Note]:
    return await n.node.db.read(lambda conn: crm.list_notes(conn, deal_id=deal_id, contact_id=contact_id))


async def admin_id(n: RunningNode) -> str:
    users = (await n.api("GET", "/api/v1/users"))["users"]
    return next(u["id"] for u in users if u["role"] == "admin")


async def record(n: RunningNode, deal_id: str, outcome: str, expect: int = 201, **fields: Any) -> dict[str, Any]:
    body = {"deal_id": deal_id, "referral_type": "mortgage", "outcome": outcome, **fields}
    answer = await n.api("POST", "/api/v1/opportunities", body, expect=expect)
    return answer["opportunity"] if expect == 201 else answer["error"]


async def listed(n: RunningNode, query: str = "") -> list[str]:
    return [o["id"] for o in (await n.api("GET", f"/api/v1/opportunities{query}"))["opportunities"]]


async def outbox_count(n: RunningNode) -> int:
    return len((await n.api("GET", "/api/v1/outbox"))["outbox"])


async def test_each_outcome_is_recorded_with_a_note_saying_why(node_factory):
    agency = await started(node_factory, "Agency", FakeClock(START))
    deal_id, (jo,) = await client_deal(agency)
    me = await admin_id(agency)

    not_raised = await record(agency, deal_id, "not_raised", contact_id=jo)
    declined = await record(agency, deal_id, "client_declined", reason="Has a broker already.")
    other = await record(agency, deal_id, "other", reason="Client was in a hurry.")
    future = await record(agency, deal_id, "future", follow_up_on="2027-02-01", reason="Buying next year.")

    assert [o["outcome"] for o in (not_raised, declined, other, future)] == [
        "not_raised", "client_declined", "other", "future"]
    assert (not_raised["state"], declined["state"], other["state"], future["state"]) == (
        "open", "closed", "open", "open")
    assert declined["closed_reason"] == "client declined" and not_raised["closed_reason"] is None
    assert not_raised["contact_id"] == jo and other["contact_id"] is None
    assert future["follow_up_on"] == "2027-02-01" and not_raised["follow_up_on"] is None
    assert {o["created_by"] for o in (not_raised, declined, other, future)} == {me}
    assert {o["referral_type"] for o in (not_raised, declined, other, future)} == {"mortgage"}
    assert future["created_at"] == "2026-11-20T10:00:00Z"
    fetched = await agency.api("GET", f"/api/v1/opportunities/{future['id']}")
    assert fetched["opportunity"] == future

    notes = await deal_notes(agency, deal_id)
    assert [n.kind for n in notes] == ["system"] * 4
    bodies = [n.body for n in notes]
    assert "not raised during the discussion" in bodies[0]
    assert "client declined" in bodies[1] and "Has a broker already." in bodies[1]
    assert "Client was in a hurry." in bodies[2]
    assert "follow up on 2027-02-01" in bodies[3] and "Buying next year." in bodies[3]
    # The note names the contact too when one was given.
    assert [n.body for n in await deal_notes(agency, deal_id, jo)] == [bodies[0]]


async def test_validation(node_factory):
    # Late evening UTC: "today" is still 20 November.
    agency = await started(node_factory, "Agency", FakeClock(datetime(2026, 11, 20, 23, 30, tzinfo=UTC)))
    broker = await started(node_factory, "Broker", FakeClock(START))
    deal_id, (jo,) = await client_deal(agency)
    _, (someone_else,) = await client_deal(agency, "Another deal")
    their_deal, _ = await client_deal(broker)

    error = await record(agency, deal_id, "future", expect=400)
    assert (error["code"], error["field"]) == ("invalid", "follow_up_on")
    assert "follow-up date" in error["message"]
    error = await record(agency, deal_id, "future", expect=400, follow_up_on="2026-11-19")
    assert (error["field"], "in the past" in error["message"]) == ("follow_up_on", True)
    error = await record(agency, deal_id, "future", expect=400, follow_up_on="20/12/2026")
    assert error["field"] == "follow_up_on"
    error = await record(agency, deal_id, "future", expect=400, follow_up_on="2026-02-30")
    assert error["field"] == "follow_up_on"
    error = await record(agency, deal_id, "not_raised", expect=400, follow_up_on="2026-12-01")
    assert error["field"] == "follow_up_on" and "only a future" in error["message"]
    for blank in ("", "   "):
        error = await record(agency, deal_id, "other", expect=400, reason=blank)
        assert (error["code"], error["field"]) == ("invalid", "reason")
    error = await record(agency, deal_id, "not_raised", expect=400, contact_id=someone_else)
    assert (error["code"], error["field"]) == ("invalid", "contact_id")
    assert "not on deal" in error["message"]
    error = await record(agency, "deal_nosuchdeal", "not_raised", expect=404)
    assert (error["code"], error["field"]) == ("not_found", "deal_id")
    error = await record(agency, their_deal, "not_raised", expect=404)
    assert (error["code"], error["field"]) == ("not_found", "deal_id")
    error = await record(agency, deal_id, "maybe", expect=400)
    assert error["field"] == "outcome"
    error = await record(agency, deal_id, "not_raised", expect=400, referral_type="Mortgage Loan")
    assert error["field"] == "referral_type"
    error = await record(agency, deal_id, "not_raised", expect=400, colour="teal")
    assert error["field"] == "colour"

    # Nothing was written by any refusal.
    assert await listed(agency, "?state=all") == []
    assert await deal_notes(agency, deal_id) == []
    # Today is not in the past; the contact on the deal is accepted.
    ok = await record(agency, deal_id, "future", follow_up_on="2026-11-20", contact_id=jo)
    assert ok["state"] == "open"
    missing = await agency.api("GET", "/api/v1/opportunities/opp_nosuch", expect=404)
    assert missing["error"]["code"] == "not_found"


async def test_follow_up_list_order_filters_and_closing(node_factory):
    clock = FakeClock(START)
    agency = await started(node_factory, "Agency", clock)
    deal_id, _ = await client_deal(agency)
    other_deal, _ = await client_deal(agency, "Sale of 3 Bay Rd")

    made: dict[str, str] = {}
    for key, deal, outcome, fields in [
        ("dec10", deal_id, "future", {"follow_up_on": "2026-12-10"}),
        ("not_raised", deal_id, "not_raised", {}),
        ("dec01", other_deal, "future", {"follow_up_on": "2026-12-01", "referral_type": "insurance"}),
        ("other", other_deal, "other", {"reason": "Phone call cut off."}),
        ("declined", deal_id, "client_declined", {}),
        ("dec05", deal_id, "future", {"follow_up_on": "2026-12-05"}),
    ]:
        made[key] = (await record(agency, deal, outcome, **fields))["id"]
        clock.advance(60)

    def ids(*keys: str) -> list[str]:
        return [made[k] for k in keys]

    # Dated ones by follow-up date, then the others oldest first; the declined one is closed.
    assert await listed(agency) == ids("dec01", "dec05", "dec10", "not_raised", "other")
    assert await listed(agency, "?state=open") == await listed(agency)
    assert await listed(agency, "?due_by=2026-12-05") == ids("dec01", "dec05")
    assert await listed(agency, "?due_by=2026-11-30") == []
    assert await listed(agency, "?referral_type=mortgage") == ids("dec05", "dec10", "not_raised", "other")
    assert await listed(agency, "?referral_type=insurance") == ids("dec01")
    assert await listed(agency, "?referral_type=mortgage&due_by=2026-12-31") == ids("dec05", "dec10")
    assert await listed(agency, f"?deal_id={other_deal}") == ids("dec01", "other")
    assert await listed(agency, "?state=closed") == ids("declined")
    assert await listed(agency, "?state=all") == ids("dec01", "dec05", "dec10", "not_raised", "other", "declined")

    # Closing takes it off the follow-up list, with a reason and a note on the deal.
    closed = await agency.api("POST", f"/api/v1/opportunities/{made['dec05']}/close",
                              {"reason": "Client bought with cash."})
    assert closed["opportunity"]["state"] == "closed"
    assert closed["opportunity"]["closed_reason"] == "Client bought with cash."
    assert "Client bought with cash." in (await deal_notes(agency, deal_id))[-1].body
    assert await listed(agency) == ids("dec01", "dec10", "not_raised", "other")
    assert await listed(agency, "?state=closed") == ids("dec05", "declined")
    again = await agency.api("POST", f"/api/v1/opportunities/{made['dec05']}/close", {"reason": "x"}, expect=409)
    assert again["error"]["code"] == "invalid_transition"
    declined = await agency.api("POST", f"/api/v1/opportunities/{made['declined']}/close", {"reason": "x"},
                                expect=409)
    assert declined["error"]["code"] == "invalid_transition"
    blank = await agency.api("POST", f"/api/v1/opportunities/{made['dec10']}/close", {"reason": "  "}, expect=400)
    assert blank["error"]["field"] == "reason"
    assert (await agency.api("GET", f"/api/v1/opportunities/{made['dec10']}"))["opportunity"]["state"] == "open"

    # Bad filters are refused by name rather than ignored.
    for query, field in [("?state=pending", "state"), ("?due_by=tomorrow", "due_by"),
                         ("?referral_type=Home%20Loan", "referral_type"), ("?sort=date", "sort")]:
        answer = await agency.api("GET", f"/api/v1/opportunities{query}", expect=400)
        assert answer["error"]["field"] == field, query
    unknown = await agency.api("GET", "/api/v1/opportunities?deal_id=deal_nosuch", expect=404)
    assert unknown["error"]["field"] == "deal_id"


async def setup_pair(node_factory: Any) -> tuple[RunningNode, RunningNode, str]:
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    return agency, broker, cid


def in_days(n: RunningNode, days: int) -> str:
    return (n.node.clock.now().astimezone(UTC).date() + timedelta(days=days)).isoformat()


async def received(n: RunningNode) -> list[dict[str, Any]]:
    return (await n.api("GET", "/api/v1/referrals?side=receiver"))["referrals"]


async def test_convert_refers_the_deal_once(node_factory):
    agency, broker, cid = await setup_pair(node_factory)
    deal_id, (jo,) = await client_deal(agency)
    opp = await record(agency, deal_id, "future", follow_up_on=in_days(agency, 30), contact_id=jo)

    answer = await agency.api("POST", f"/api/v1/opportunities/{opp['id']}/convert",
                              {"connection_id": cid, "referring_agent_user_id": await admin_id(agency), "consent": consent(jo), "message": "Ready now."}, expect=202)
    referral = answer["referral"]
    assert answer["opportunity"]["state"] == "converted"
    assert answer["opportunity"]["referral_local_id"] == referral["local_id"]
    assert referral["deal_id"] == deal_id
    assert referral["referral_type"] == "mortgage"  # the opportunity's type: the body gave none
    assert (await agency.api("GET", f"/api/v1/opportunities/{opp['id']}"))["opportunity"] == answer["opportunity"]
    assert await listed(agency) == []
    assert await listed(agency, "?state=converted") == [opp["id"]]

    async def arrived() -> bool:
        return len(await received(broker)) == 1

    await wait_for(arrived)
    theirs = (await received(broker))[0]
    assert theirs["id"] == referral["id"]
    assert theirs["referral_type"] == "mortgage"
    assert theirs["offer"]["deal"]["title"] == "Purchase at 12 Harbour St"
    assert theirs["offer"]["message"] == "Ready now."

    # Converted is final: a second conversion is refused and sends nothing.
    before = await outbox_count(agency)
    twice = await agency.api("POST", f"/api/v1/opportunities/{opp['id']}/convert",
                             {"connection_id": cid, "referring_agent_user_id": await admin_id(agency), "consent": consent(jo)}, expect=409)
    assert twice["error"]["code"] == "invalid_transition"
    closing = await agency.api("POST", f"/api/v1/opportunities/{opp['id']}/close", {"reason": "x"}, expect=409)
    assert closing["error"]["code"] == "invalid_transition"
    # A declined opportunity is closed, so it cannot be converted either.
    declined = await record(agency, deal_id, "client_declined")
    refused = await agency.api("POST", f"/api/v1/opportunities/{declined['id']}/convert",
                               {"connection_id": cid, "referring_agent_user_id": await admin_id(agency), "consent": consent(jo)}, expect=409)
    assert refused["error"]["code"] == "invalid_transition"
    assert await outbox_count(agency) == before
    assert len((await agency.api("GET", "/api/v1/referrals?side=sender"))["referrals"]) == 1

    # Deferred: converted with the deferred referral's id; nothing leaves until the stage.
    later_deal, (sam,) = await client_deal(agency, "Purchase at 9 Ocean Pde")
    waiting = await record(agency, later_deal, "not_raised", referral_type="insurance")
    offer_accepted = await stage_id(agency, "Offer accepted")
    deferred = await agency.api("POST", f"/api/v1/opportunities/{waiting['id']}/convert",
                                {"connection_id": cid, "referring_agent_user_id": await admin_id(agency), "consent": consent(sam), "when_stage_id": offer_accepted},
                                expect=201)
    assert deferred["opportunity"]["state"] == "converted"
    assert deferred["opportunity"]["deferred_referral_id"] == deferred["deferred"]["id"]
    assert deferred["opportunity"]["referral_local_id"] is None
    assert deferred["deferred"]["state"] == "waiting"
    assert deferred["deferred"]["request"]["referral_type"] == "insurance"
    assert await outbox_count(agency) == before


async def test_convert_without_consent_changes_nothing(node_factory):
    agency, broker, cid = await setup_pair(node_factory)
    deal_id, (jo,) = await client_deal(agency)
    opp = await record(agency, deal_id, "other", reason="Will call back after the auction.")
    outbox_before = await outbox_count(agency)
    notes_before = await deal_notes(agency, deal_id)

    answer = await agency.api("POST", f"/api/v1/opportunities/{opp['id']}/convert", {"connection_id": cid},
                              expect=400)
    assert (answer["error"]["code"], answer["error"]["field"]) == ("consent_required", "consent")
    unknown = await agency.api("POST", f"/api/v1/opportunities/{opp['id']}/convert",
                               {"connection_id": "con_nosuch", "consent": consent(jo)}, expect=404)
    assert unknown["error"]["code"] == "unknown_subject"
    stranger = await agency.api("POST", f"/api/v1/opportunities/{opp['id']}/convert",
                                {"connection_id": cid, "referring_agent_user_id": await admin_id(agency), "consent": consent("ct_nosuch")}, expect=400)
    assert stranger["error"]["field"] == "consent.contact_ids"

    after = (await agency.api("GET", f"/api/v1/opportunities/{opp['id']}"))["opportunity"]
    assert after == opp  # still open, unchanged, no referral
    assert await outbox_count(agency) == outbox_before
    assert (await agency.api("GET", "/api/v1/referrals"))["referrals"] == []
    assert await deal_notes(agency, deal_id) == notes_before
    assert await received(broker) == []

    # It can still be converted once consent is recorded.
    done = await agency.api("POST", f"/api/v1/opportunities/{opp['id']}/convert",
                            {"connection_id": cid, "referring_agent_user_id": await admin_id(agency), "consent": consent(jo)}, expect=202)
    assert done["opportunity"]["state"] == "converted"
    assert await outbox_count(agency) == outbox_before + 1
