"""Spec 12.3 through two real nodes: the requester's wish narrows an invitation's
direction (never widens it), and a wish with nothing in common with it is refused with
direction_not_allowed, leaving the invitation open (issue 15, gap 5)."""

from __future__ import annotations

from typing import Any

from conftest import RunningNode, wait_for


async def _invite(inviter: RunningNode, name: str, direction: str) -> dict[str, Any]:
    return await inviter.api("POST", "/api/v1/invitations", {"name": name, "direction": direction})


async def _redeem(requester: RunningNode, invite: dict[str, Any], **extra: Any) -> str:
    body = {"referral_url": invite["referral_url"], "referral_key": invite["referral_key"], **extra}
    return (await requester.api("POST", "/api/v1/connections", body))["connection"]["id"]


async def _state(node: RunningNode, cid: str) -> dict[str, Any] | None:
    conns = (await node.api("GET", "/api/v1/connections"))["connections"]
    return next((c for c in conns if c["id"] == cid), None)


async def _active(requester: RunningNode, inviter: RunningNode, cid: str) -> tuple[str, str]:
    async def both_active() -> bool:
        a, b = await _state(requester, cid), await _state(inviter, cid)
        return a is not None and b is not None and a["state"] == b["state"] == "active"

    await wait_for(both_active)
    return (await _state(requester, cid))["direction"], (await _state(inviter, cid))["direction"]  # type: ignore[index]


async def test_the_wish_narrows_a_both_invitation(node_factory):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    invite = await _invite(broker, "Agency", "both")
    cid = await _redeem(agency, invite, direction="send")
    # Before: the broker granted both. Now the agency, which asked only to send, sends,
    # and the broker only receives.
    assert await _active(agency, broker, cid) == ("send", "receive")


async def test_without_a_wish_the_invitation_decides(node_factory):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid = await _redeem(agency, await _invite(broker, "Agency", "both"))
    assert await _active(agency, broker, cid) == ("both", "both")
    other = await node_factory("Other")
    cid = await _redeem(other, await _invite(broker, "Other", "receive"), direction="both")
    assert await _active(other, broker, cid) == ("send", "receive")  # the wish does not widen


async def test_a_wish_outside_the_invitation_is_refused_and_the_invitation_stays_open(node_factory):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    invite = await _invite(broker, "Agency", "receive")  # the broker receives; the agency sends
    cid = await _redeem(agency, invite, direction="receive")

    async def refused() -> bool:
        c = await _state(agency, cid)
        return c is not None and c["state"] == "refused"

    await wait_for(refused)
    detail = (await agency.api("GET", f"/api/v1/connections/{cid}"))["connection"]
    assert detail["closing_note"].startswith("direction_not_allowed")
    assert await _state(broker, cid) is None  # nothing stored, no key pinned
    failed = (await agency.api("GET", "/api/v1/outbox?state=failed"))["outbox"]
    assert [i["last_error"] for i in failed] == ["direction_not_allowed"]
    invitations = (await broker.api("GET", "/api/v1/invitations"))["invitations"]
    assert [(i["id"], i["state"]) for i in invitations] == [(invite["invitation"]["id"], "open")]
    # The same invitation, redeemed as it allows, connects.
    cid = await _redeem(agency, invite)
    assert await _active(agency, broker, cid) == ("send", "receive")
