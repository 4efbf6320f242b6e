"""The report page through a real browser: two real nodes exchange referrals over two
months (a shared fake clock), the receiver works them, and the sender's report shows the
numbers, the two SVG charts with their tables, and a CSV download equal to the API's."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from test_web_admin import connect, referral, wait_for
from web_kit import check_page, choose_password, new_page

from node.base.clock import FakeClock

XSS = "<script>alert(1)</script>"
AVA = {"name": "Ava Agent", "email": "ava@agency.example"}
ODD = {"name": XSS, "email": "odd@agency.example"}
BEN = {"name": "Ben Broker-Friend", "email": "ben@agency.example"}


async def test_report_with_charts_table_and_csv(node_factory, browser, tmp_path) -> None:
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=70)
    clock = FakeClock(start)
    a = await node_factory("Agency", start=False)
    b = await node_factory("Broker", start=False)
    await a.start(clock=clock)
    await b.start(clock=clock)
    cid = await connect(a, b)
    plan = [(0, AVA, ["accepted", "won"]), (14, ODD, ["declined"]), (30, AVA, ["accepted"]), (60, BEN, [])]
    sent: list[tuple[str, list[str]]] = []
    for days, agent, moves in plan:
        clock.set(start + timedelta(days=days))
        body = referral(cid, f"Purchase on day {days}", agent)
        sent.append(((await a.api("POST", "/api/v1/referrals", body, expect=202))["referral"]["id"], moves))

        async def arrived(n: int = len(sent)) -> bool:
            return len((await b.api("GET", "/api/v1/referrals?side=receiver"))["referrals"]) == n

        await wait_for(arrived)
    received = {r["id"]: r["local_id"] for r in (await b.api("GET", "/api/v1/referrals?side=receiver"))["referrals"]}
    for referral_id, moves in sent:
        for status in moves:
            await b.api("POST", f"/api/v1/referrals/{received[referral_id]}/status", {"status": status})

    async def caught_up() -> bool:
        rows = (await a.api("GET", "/api/v1/referrals?side=sender"))["referrals"]
        return sorted(r["state"] for r in rows) == ["accepted", "declined", "delivered", "won"]

    await wait_for(caught_up)
    clock.set(today)

    page = await new_page(browser)
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    await choose_password(page, a.extra["password_link"])
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    await page.wait_for_url(re.compile(r".*/reports$"))
    sent_card = await page.locator(".card.total").first.inner_text()
    assert "Sent by us" in sent_card and "4 referrals" in sent_card and "25% converted" in sent_card
    assert "1 won · 1 in progress · 1 awaiting an answer" in sent_card
    # the charts: SVG drawn on the server, each with an accessible name and its numbers as a table
    trend = page.get_by_role("img", name="Referrals per month")
    assert await trend.count() == 1
    assert await trend.locator("rect").count() >= 4  # four referrals, each in a segment of some bar
    funnel = page.get_by_role("img", name="Conversion of referrals sent by us")
    assert "4 sent, 2 accepted, 1 won." in (await funnel.locator("desc").text_content() or "")
    await page.get_by_text("The numbers per month").click()
    month_rows = page.get_by_role("region", name="Referrals per month").locator("tbody tr")
    totals = [int(await month_rows.nth(i).locator("td").last.inner_text()) for i in range(await month_rows.count())]
    assert sum(totals) == 4 and len(totals) == 12  # the last twelve months, empty ones too
    await page.get_by_text("The numbers of the funnel").click()
    funnel_row = await page.get_by_role("region", name="Conversion funnel").get_by_role("row", name="Sent by us").inner_text()
    assert re.sub(r"\s+", " ", funnel_row).strip() == "Sent by us 4 2 (50%) 1 (25%)"
    connection_row = await page.get_by_role("region", name="Referrals by connection").get_by_role(
        "row", name="Broker").inner_text()
    assert re.sub(r"\s+", " ", connection_row).strip() == "Broker 4 0 1 1 1 1"
    agents = page.get_by_role("region", name="Referrals by referring agent")
    assert await agents.get_by_role("row", name=XSS).count() == 1  # a name is text, never markup
    ava = re.sub(r"\s+", " ", await agents.get_by_role("row", name="Ava Agent").inner_text()).strip()
    assert ava == "Ava Agent ava@agency.example Sent by us 2 1 1 0 0 50%"
    await check_page(page, "reports")

    # by week, one side, a chosen range
    first_day = (start - timedelta(days=1)).date().isoformat()
    await page.get_by_label("From", exact=True).fill(first_day)
    await page.get_by_label("To", exact=True).fill(today.date().isoformat())
    await page.get_by_label("Referrals", exact=True).select_option(label="Sent by us")
    await page.get_by_label("Chart by").select_option(label="Week")
    await page.get_by_role("button", name="Show the report").click()
    await page.wait_for_url(re.compile(r".*by=week.*"))
    weekly = page.get_by_role("img", name="Referrals per week")
    assert await weekly.locator("g.bar").count() >= 10
    assert await page.locator(".card.total").count() == 1  # only the sent side
    await check_page(page, "reports-weekly")

    # the CSV is the API's CSV for the same range (the API's "to" is the day after)
    async with page.expect_download() as info:
        await page.get_by_role("link", name="Download as CSV").click()
    download = await info.value
    path = tmp_path / "report.csv"
    await download.save_as(path)
    got = await asyncio.to_thread(path.read_text, encoding="utf-8")
    after = (today + timedelta(days=1)).date().isoformat()
    async with a.session.get(f"{a.url}/api/v1/reports/referrals.csv?from={first_day}&to={after}&side=sender",
                             headers={"Authorization": f"Bearer {a.token}"}) as resp:
        assert resp.status == 200
        expected = await resp.text()
    assert got.replace("\r\n", "\n") == expected.replace("\r\n", "\n")
    assert "totals,sender,,,,sent,4" in got.replace("\r\n", "\n")
    assert f"agent,sender,odd@agency.example,{XSS}" in got

    # what cannot be read is said beside the field, with a 400, and nothing else
    response = await page.goto(a.url + "/reports?from=yesterday&to=2026-01-01&side=both")
    assert response is not None and response.status == 400
    problems = await page.get_by_role("alert").inner_text()
    assert "Enter the first day as a date" in problems and "Choose which referrals to show" in problems
    await check_page(page, "reports-errors")
    response = await page.goto(a.url + f"/reports?from={today.date().isoformat()}&to={first_day}")
    assert response is not None and response.status == 400
    assert "The last day must be the same as or after the first day" in await page.get_by_role("alert").inner_text()
    assert not dialogs

    # like the API's report, the page is open to brokers too
    created = await a.api("POST", "/api/v1/users", {"email": "bo@agency.example", "name": "Bo Broker"})
    broker = await new_page(browser)
    await choose_password(broker, created["password_link"])
    response = await broker.goto(a.url + "/reports")
    assert response is not None and response.status == 200
    assert await broker.get_by_role("img", name="Referrals per month").count() == 1


async def test_an_empty_report_says_so(node_factory, browser) -> None:
    a = await node_factory("Agency")
    page = await new_page(browser)
    await choose_password(page, a.extra["password_link"])
    await page.goto(a.url + "/reports")
    assert "0 referrals" in await page.locator(".card.total").first.inner_text()
    assert "No referral in this range." in await page.locator("main").inner_text()
    assert await page.get_by_role("img").count() == 2  # the funnels still draw, at zero
    await check_page(page, "reports-empty")
