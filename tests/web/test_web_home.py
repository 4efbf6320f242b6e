"""Home's sections besides "Referrals waiting", each made non-empty by real nodes and read
on the page by name: follow-ups due today (and overdue), deliveries failing to a node that
is down, and a connection request another organisation sent. No raw id is shown."""

from __future__ import annotations

from datetime import timedelta

from refer_kit import client_deal, refer_by_api, setup_pair, signed_in, wait_for
from web_kit import check_page


async def test_home_shows_follow_ups_failing_deliveries_and_connection_requests_by_name(
        node_factory, browser, smtp) -> None:
    pair = await setup_pair(node_factory, smtp)
    a, b = pair.a, pair.b
    admin = next(u for u in (await a.api("GET", "/api/v1/users"))["users"] if u["role"] == "admin")
    admin["password_link"] = a.extra["password_link"]
    page = await signed_in(browser, admin)
    for section, empty in (("h-followups", "Nothing to follow up today."),
                           ("h-failing", "Every delivery is going through."),
                           ("h-requests", "No organisation is waiting for an answer.")):
        assert empty in await page.inner_text(f"section[aria-labelledby='{section}']")

    # follow-ups: one due today, one overdue (its date moved back, as time would move on)
    deal_id, _ = await client_deal(a, pair.workflow, pair.bea["id"], title="Purchase at 9 Pier Rd")
    today = a.node.clock.now().astimezone(a.config.zone).date()
    ids = [(await a.api("POST", "/api/v1/opportunities", {
        "deal_id": deal_id, "referral_type": kind, "outcome": "future", "follow_up_on": today.isoformat()},
        expect=201))["opportunity"]["id"] for kind in ("insurance", "conveyancing")]
    await a.node.db.write(lambda c: c.execute("UPDATE opportunities SET follow_up_on = ? WHERE referral_type = ?",
                                              ((today - timedelta(days=3)).isoformat(), "conveyancing")))

    # a failing delivery: Harbour's node is down when Acme refers
    harbour_id = (await b.api("GET", "/api/v1/node"))["node_id"]
    await b.stop()
    await refer_by_api(pair, "Purchase at 3 Quay St")

    async def attempted() -> bool:
        return any(i["attempts"] > 0 for i in (await a.api("GET", "/api/v1/outbox?state=pending"))["outbox"])

    await wait_for(attempted)

    # a connection request: Coast asks Acme's admin, by e-mail address, to connect
    c = await node_factory("Coast", org_name="Coast Conveyancing")
    coast_id = (await c.api("GET", "/api/v1/node"))["node_id"]
    asked = await c.api("POST", "/api/v1/connections", {"url": a.url, "email": a.extra["admin_email"],
                                                         "message": "We settle in your area."})
    request_id = asked["connection"]["id"]

    async def requested() -> bool:
        return any(x["id"] == request_id and x["state"] == "requested"
                   for x in (await a.api("GET", "/api/v1/connections"))["connections"])

    await wait_for(requested)

    await page.goto(a.url + "/")
    follow_ups = page.locator("section[aria-labelledby='h-followups']")
    items = [await li.inner_text() for li in await follow_ups.locator("li").all()]
    assert len(items) == 2, items
    assert items[0].startswith("Purchase at 9 Pier Rd") and "Conveyancing" in items[0], items
    assert f"overdue since {(today - timedelta(days=3)).day}" in items[0], items
    assert items[1].startswith("Purchase at 9 Pier Rd") and "Insurance · due today" in items[1], items
    assert await follow_ups.get_by_role("link", name="Purchase at 9 Pier Rd").first.get_attribute("href") == \
        f"/deals/{deal_id}"
    assert "2" == await follow_ups.locator(".count").inner_text()

    failing = await page.inner_text("section[aria-labelledby='h-failing']")
    assert "Harbour Realty" in failing and "1 message waiting since" in failing, failing
    assert "Open the outbox" in failing  # an admin can go and retry it

    requests = page.locator("section[aria-labelledby='h-requests']")
    text = await requests.inner_text()
    assert "Coast Conveyancing" in text and "for Acme Admin" in text, text
    assert await requests.get_by_role("link", name="Coast Conveyancing").get_attribute("href") == \
        f"/connections/{request_id}"

    shown = await page.inner_text("main")
    for raw in (harbour_id, coast_id, request_id, deal_id, *ids, a.extra["admin_email"]):
        assert raw not in shown, raw  # names, never ids
    await check_page(page, "home-busy")
