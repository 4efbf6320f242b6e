"""Two real nodes for the referral pages' tests: Acme (mortgage brokers, who refer) and
Harbour (estate agents, who receive), connected through the admin API, each with a
broker who signs in through the browser, and a deal at Acme with everything that must
never travel (custom fields, a document, a history note)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from web_kit import Mailbox, choose_password, new_page, smtp_settings

RunningNode = Any  # tests/conftest.py's, whose name the web tests' own conftest shadows

DISCLOSURE = "We share your details with our partner so they can contact you about a loan.\nVersion 7."
#: What Acme's connection to Harbour lets a referral carry: no phone, no date of birth.
ALLOWED = ["deal.title", "deal.amount", "deal.summary", "contacts.first_name", "contacts.last_name",
           "contacts.email"]


async def wait_for(predicate: Callable[[], Awaitable[bool]], *, within_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


@dataclass
class Pair:
    a: RunningNode
    b: RunningNode
    connection_id: str
    bea: dict[str, Any]  # Acme's broker, who refers
    owen: dict[str, Any]  # Harbour's broker, who owns inbound referrals
    workflow: dict[str, Any]  # Acme's
    inbound: dict[str, Any]  # Harbour's
    extra: dict[str, Any] = field(default_factory=dict)


async def add_user(node: RunningNode, email: str, name: str, role: str = "broker") -> dict[str, Any]:
    answer = await node.api("POST", "/api/v1/users", {"email": email, "name": name, "role": role}, expect=201)
    return {**answer["user"], "password_link": answer["password_link"]}


async def connect(a: RunningNode, b: RunningNode) -> str:
    """b invites a to send it referrals; a connects. The connection's id (the same on both)."""
    invite = await b.api("POST", "/api/v1/invitations", {"name": a.config.org_name, "direction": "receive"})
    result = await a.api("POST", "/api/v1/connections",
                         {"referral_url": invite["referral_url"], "referral_key": invite["referral_key"]})
    cid = result["connection"]["id"]

    async def both_active() -> bool:
        for node in (a, b):
            if not any(c["id"] == cid and c["state"] == "active"
                       for c in (await node.api("GET", "/api/v1/connections"))["connections"]):
                return False
        return True

    await wait_for(both_active)
    return cid


async def client_deal(node: RunningNode, workflow: dict[str, Any], owner: str, *, first: str = "Jo",
                      title: str = "Purchase at 12 Harbour St") -> tuple[str, str]:
    contact = (await node.api("POST", "/api/v1/contacts", {
        "first_name": first, "last_name": "Citizen", "email": "jo@example.com", "phone": "+61 400 000 000",
        "date_of_birth": "1988-04-02", "custom_fields": {"favourite_colour": "teal"},
    }, expect=201))["contact"]
    deal = (await node.api("POST", "/api/v1/deals", {
        "title": title, "amount": "650000.00", "currency": "AUD", "summary": "First home.",
        "workflow_id": workflow["id"], "stage_id": workflow["stages"][0]["id"], "owner_user_id": owner,
        "custom_fields": {"commission_split": "60/40"}, "labels": ["vip"],
        "contacts": [{"contact_id": contact["id"], "role": "primary"}],
    }, expect=201))["deal"]
    await node.api("POST", f"/api/v1/deals/{deal['id']}/notes", {"body": "Client is anxious about rates."}, expect=201)
    await node.api("POST", f"/api/v1/deals/{deal['id']}/documents",
                   {"name": "payslip.pdf", "label": "Payslip", "size_bytes": 12345, "sha256": "a" * 64}, expect=201)
    return deal["id"], contact["id"]


async def refer_by_api(pair: Pair, title: str) -> str:
    """Bea refers a new deal of that title to Harbour through the API; the local id of the sent referral."""
    deal_id, contact_id = await client_deal(pair.a, pair.workflow, pair.bea["id"], title=title)
    sent = (await pair.a.api("POST", f"/api/v1/deals/{deal_id}/refer", {
        "connection_id": pair.connection_id, "referring_agent_user_id": pair.bea["id"],
        "consent": {"contact_ids": [contact_id], "method": "written", "disclosure_version": "v1",
                    "disclosure_text": DISCLOSURE}}, expect=202))["referral"]
    return str(sent["local_id"])


async def setup_pair(node_factory: Any, smtp: Mailbox) -> Pair:
    a = await node_factory("Acme", org_name="Acme Mortgages", **smtp_settings(smtp))
    b = await node_factory("Harbour", org_name="Harbour Realty", **smtp_settings(smtp))
    cid = await connect(a, b)
    bea = await add_user(a, "bea@acme.example", "Bea Broker")
    owen = await add_user(b, "owen@harbour.example", "Owen Owner")
    admin_a = next(u["id"] for u in (await a.api("GET", "/api/v1/users"))["users"] if u["role"] == "admin")
    workflow = (await a.api("POST", "/api/v1/workflows", {
        "name": "Home loans", "owner_user_id": admin_a, "stage_names": ["Lead", "Qualified", "Offer", "Settled"]},
        expect=201))["workflow"]
    admin_b = next(u["id"] for u in (await b.api("GET", "/api/v1/users"))["users"] if u["role"] == "admin")
    inbound = (await b.api("POST", "/api/v1/workflows", {
        "name": "Referred buyers", "owner_user_id": admin_b,
        "stage_names": ["New referral", "Contacted", "Viewing", "Sold"], "outcomes": {"Sold": "won"}},
        expect=201))["workflow"]
    await a.api("PATCH", f"/api/v1/connections/{cid}/settings",
                {"outbound": {"referral_type": "mortgage", "allowed_fields": ALLOWED}})
    await b.api("PATCH", f"/api/v1/connections/{cid}/settings", {"inbound": {
        "workflow_id": inbound["id"], "stage_id": inbound["stages"][0]["id"],
        "assignment": {"rule": "fixed", "user_id": owen["id"]}}})
    return Pair(a, b, cid, bea, owen, workflow, inbound)


async def signed_in(browser: Any, user: dict[str, Any], *, phone: bool = False) -> Any:
    """A browser page with ``user`` signed in (through their set-password link)."""
    page = await new_page(browser, phone=phone)
    await choose_password(page, user["password_link"])
    return page


async def fill_referral(page: Any, *, fields: tuple[str, ...] = ("First name", "E-mail address"),
                        client: str = "Jo Citizen", message: str = "Please call Jo after 5pm.\nThanks!") -> None:
    """Fill the refer form as a broker does (the organisation is the only one offered)."""
    for label in fields:
        await page.get_by_label(label, exact=False).first.check()
    await page.get_by_label("Message to").fill(message)
    await page.get_by_label(f"{client} consented to this referral").check()
    await page.get_by_label("Verbal (in person or by phone)").check()
    await page.get_by_label("Privacy disclosure version").fill("privacy-2026-07")
    await page.get_by_label("Privacy disclosure text").fill(DISCLOSURE)


async def referral_rows(node: RunningNode, side: str) -> list[dict[str, Any]]:
    return (await node.api("GET", f"/api/v1/referrals?side={side}"))["referrals"]
