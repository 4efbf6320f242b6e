"""Every page of the client portal in a real browser, checked by axe-core and shot at
desktop and phone width: the fact find's sections that the must-show flow does not reach
(employment, income, assets and liabilities), a section with its flow's video, the
dashboard with its stage's video, and the error page of a damaged file (the client's and
the broker's). Also the broker's settings that change where the client lands, and the
two reasons sharing is refused, each named on its own.

The video players are YouTube's and Vimeo's, outside this machine: the browser's requests
to them are answered by a stand-in page (the network edge, not our code), so a screenshot
shows where the player sits; the test checks the page asked for the privacy-enhanced URL.
"""

from __future__ import annotations

import re
from typing import Any

from portal_kit import (
    client_sign_in,
    deal_with_applicants,
    fill_contact_details,
    passcode_of_mail,
    pdf,
    ready_to_share,
    share,
)
from web_kit import check_page, choose_password, new_page, smtp_settings

PLAYER = ("<!doctype html><html lang='en'><title>Video player</title><body style='margin:0;display:grid;"
          "place-items:center;height:100vh;background:#111;color:#fff;font:16px sans-serif'>"
          "<p>Video player</p></body></html>")


async def players_answered_locally(page: Any) -> list[str]:
    """Answer the video providers' requests with a stand-in; the URLs asked for."""
    asked: list[str] = []

    async def stand_in(route: Any) -> None:
        asked.append(route.request.url)
        await route.fulfill(status=200, content_type="text/html", body=PLAYER)

    for host in ("https://www.youtube-nocookie.com/**", "https://player.vimeo.com/**", "https://*.youtube.com/**",
                 "https://vimeo.com/**"):
        await page.route(host, stand_in)
    return asked


async def full_flow(node: Any, deal: dict[str, Any]) -> str:
    """A flow of every section of the catalogue; a Vimeo video on its employment page and
    a YouTube one on the deal's stage. The flow's id."""
    from node.portal import settings as portal
    from node.portal.catalogue import catalogue

    me = deal["owner_user_id"]

    def setup(conn: Any, ctx: Any) -> str:
        flow = portal.save_flow(conn, me, loan_type="Purchase", name="Full fact find", now=ctx.now,
                                sections={s.key: [sub.key for sub in s.subsections] for s in catalogue().sections})
        portal.set_video(conn, me, stage_id=deal["stage_id"], url="https://youtu.be/dQw4w9WgXcQ",
                         description="What happens while your application is a lead")
        portal.set_video(conn, me, flow_id=flow, section="employment", url="https://vimeo.com/76979871",
                         description="Why we ask about your work")
        return flow

    return str(await node.node.transact(setup))


async def save(page: Any, then: str) -> None:
    await page.get_by_role("button", name="Save and continue").click()
    await page.wait_for_url(re.compile(rf".*/client/{then}$"))


async def test_every_client_page_renders_clean_at_both_widths(node_factory, browser, smtp) -> None:
    a = await node_factory("Summit", **smtp_settings(smtp))
    setup = await deal_with_applicants(a)
    deal, ana = setup["deal"], setup["contacts"][0]
    await ready_to_share(a, deal["id"])
    flow = await full_flow(a, deal)
    await share(a, deal["id"], ana["id"], flow, see_others=False, documents=["Photo ID"])
    code = passcode_of_mail(await smtp.wait_for("ana@example.com", "your client portal"))
    client = await new_page(browser)
    asked = await players_answered_locally(client)
    await client_sign_in(client, a.url, "ana@example.com", code)
    await client.wait_for_url(re.compile(r".*/client/fact-find/personal$"))
    assert "section 1 of 6" in await client.locator(".crumbs").inner_text()

    # personal and contact details (their errors are shot by the must-show flow)
    await check_page(client, "client-fact-find-personal")
    await client.get_by_label("First name").fill("Ana")
    await client.get_by_label("Last name").fill("Hill")
    await client.get_by_label("Date of birth", exact=True).fill("1990-02-27")
    await client.get_by_label("Residency status").select_option("Citizen")
    await save(client, "fact-find/contact")
    await check_page(client, "client-fact-find-contact")
    await fill_contact_details(client, "5")
    await save(client, "fact-find/employment")

    # employment, with the flow's video (Vimeo's privacy-enhanced player, "do not track")
    video = client.locator("figure.video iframe")
    assert await video.get_attribute("src") == "https://player.vimeo.com/video/76979871?dnt=1"
    assert await client.locator("figure.video figcaption").inner_text() == "Why we ask about your work"
    await client.frame_locator("figure.video iframe").get_by_text("Video player").wait_for()
    assert "https://player.vimeo.com/video/76979871?dnt=1" in asked
    # every date field says the form it wants, not only the one whose catalogue entry has a hint
    assert await client.locator("#h-previous-1-ended").inner_text() == "For example, 1985-03-27."
    assert "h-previous-1-ended" in await client.locator("#f-previous-1-ended").get_attribute("aria-describedby")
    await check_page(client, "client-fact-find-employment")
    await client.locator("#f-previous-1-employer").fill("Harbour Bakery")
    await client.locator("#f-previous-1-started").fill("2015-13-01")
    # a repeated row's message names its row, at the top and beside the field
    await save_refused(client, ("Choose employment type", "Previous employment 1: Start date must be a real date",
                                "Previous employment 1: Enter end date"))
    assert "Previous employment 1: Enter end date" in await client.locator("#e-previous-1-ended").inner_text()
    await check_page(client, "client-fact-find-employment-error")
    await client.get_by_label("Employment type").select_option("Full time")
    await client.get_by_label("Employer (optional)", exact=True).fill("Summit Shipping")
    await client.locator("#f-previous-1-started").fill("2015-01-05")
    await client.locator("#f-previous-1-ended").fill("2021-06-30")
    await save(client, "fact-find/income")

    # income and living expenses
    await check_page(client, "client-fact-find-income")
    await client.get_by_label("Salary or wages per year, before tax").fill("lots")
    await client.get_by_label("Groceries (optional)").fill("-5")
    await save_refused(client, ("Salary or wages per year, before tax must be an amount in dollars",
                                "Groceries must be an amount in dollars"))
    await check_page(client, "client-fact-find-income-error")
    await client.get_by_label("Salary or wages per year, before tax").fill("$95,000")
    await client.get_by_label("Groceries (optional)").fill("800")
    await save(client, "fact-find/position")

    # assets and liabilities: repeated rows, each labelled with its row
    await check_page(client, "client-fact-find-position")
    await client.locator("#f-assets-1-kind").select_option("Savings")
    await client.locator("#f-liabilities-1-lender").fill("Big Bank")
    await save_refused(client, ("Assets 1: Enter value", "Liabilities 1: Choose type",
                                "Liabilities 1: Enter balance owing"))
    assert "Liabilities 1: Choose type" in await client.locator("#e-liabilities-1-kind").inner_text()
    await check_page(client, "client-fact-find-position-error")
    await client.locator("#f-assets-1-value").fill("42,000")
    await client.locator("#f-liabilities-1-kind").select_option("Car loan")
    await client.locator("#f-liabilities-1-balance").fill("12500.50")
    await save(client, "fact-find/goals")
    await client.get_by_label("Main goal").select_option("Buy a home to live in")
    await client.get_by_label("Yes").check()
    await save(client, "check-answers")
    answers = await client.locator("main").inner_text()
    for seen in ("Summit Shipping", "Harbour Bakery", "$95,000.00", "$800.00", "$42,000.00", "Big Bank", "$12,500.50", "Car loan"):
        assert seen in answers, (seen, answers)
    await check_page(client, "client-check-answers-full")
    await client.get_by_role("button", name="Send my answers").click()
    await client.wait_for_url(re.compile(r".*/client/dashboard$"))

    # the dashboard with the stage's video (YouTube's no-cookie player)
    assert await video.get_attribute("src") == "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"
    await client.frame_locator("figure.video iframe").get_by_text("Video player").wait_for()
    assert "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ" in asked
    assert not [u for u in asked if "youtube.com" in u.replace("youtube-nocookie.com", "") or "//vimeo.com" in u]
    await check_page(client, "client-dashboard-video")

    # a damaged stored file: the client's page and the broker's say so, serve nothing
    await client.get_by_label("File for Photo ID").set_input_files(
        {"name": "licence.pdf", "mimeType": "application/pdf", "buffer": pdf("ANA-LICENCE")})
    await client.get_by_role("button", name="Upload Photo ID").click()
    assert "licence.pdf is uploaded for Photo ID." in await client.locator(".flash").inner_text()
    file_id = await a.node.db.read(lambda conn: conn.execute(
        "SELECT id FROM client_files WHERE name = 'licence.pdf'").fetchone()[0])
    stored = a.config.data_dir / "client-files" / file_id
    sealed = bytearray(stored.read_bytes())
    sealed[len(sealed) // 2] ^= 0x01
    stored.write_bytes(bytes(sealed))
    answer = await client.goto(f"{a.url}/client/files/{file_id}")
    assert answer is not None and answer.status == 409
    shown = await client.locator("main .lead").inner_text()
    assert "licence.pdf is damaged" in shown and "Upload it again from your dashboard." in shown
    assert "ANA-LICENCE" not in shown and file_id not in shown
    await check_page(client, "client-file-damaged")
    broker = await new_page(browser)
    await choose_password(broker, a.extra["password_link"])
    answer = await broker.goto(f"{a.url}/deals/{deal['id']}/portal/files/{file_id}")
    assert answer is not None and answer.status == 409
    lead = await broker.locator("main .lead").inner_text()  # what the page leads with, not its small print
    assert "licence.pdf is damaged" in lead and "Ask the client to upload it again." in lead, lead
    await check_page(broker, "portal-file-damaged")


async def save_refused(page: Any, problems: tuple[str, ...]) -> None:
    await page.get_by_role("button", name="Save and continue").click()
    summary = await page.locator(".error-summary").inner_text()
    for problem in problems:
        assert problem in summary, (problem, summary)


async def try_to_share(page: Any, base: str, deal_id: str) -> str:
    """Invite Ana as a broker would; the error summary's text."""
    await page.goto(f"{base}/deals/{deal_id}/portal")
    await page.get_by_label("Client", exact=True).select_option(label="Ana Hill")
    await page.get_by_label("No", exact=True).check()
    await page.get_by_label("Flow", exact=True).select_option(index=1)
    await page.get_by_label("Photo ID", exact=True).check()
    await page.get_by_role("button", name="Invite").click()
    await page.wait_for_load_state()
    # the summary links to the list of what blocks sharing; no field is marked wrong
    assert await page.locator(".error-summary a").get_attribute("href") == "#f-blockers"
    assert await page.locator("#f-blockers").count() == 1 and await page.locator(".field.has-error").count() == 0
    return str(await page.locator(".error-summary").inner_text())


async def test_each_thing_that_blocks_sharing_is_named_alone(node_factory, browser, smtp) -> None:
    a = await node_factory("Summit", **smtp_settings(smtp))
    one = (await deal_with_applicants(a, people=(("Ana", "ana@example.com", None),)))["deal"]
    two = (await deal_with_applicants(a, "Hill refinance", (("Ana", "ana2@example.com", None),)))["deal"]
    broker = await new_page(browser)
    await choose_password(broker, a.extra["password_link"])

    # the documents are there, the privacy disclosure is not: only the disclosure is named
    await ready_to_share(a, one["id"], disclosure="")
    await broker.goto(f"{a.url}/deals/{one['id']}/portal")
    blockers = await broker.locator(".blockers").inner_text()
    assert "Set your privacy disclosure in your client portal settings." in blockers
    assert "labelled" not in blockers and "Upload to this deal" not in blockers, blockers
    await check_page(broker, "portal-deal-blocked-disclosure")
    summary = await try_to_share(broker, a.url, one["id"])
    assert "Set your privacy disclosure" in summary and "labelled" not in summary, summary

    # the disclosure set, one of the two documents missing: only that document is named
    await ready_to_share(a, two["id"], labels=("Credit guide",))
    await broker.goto(f"{a.url}/deals/{two['id']}/portal")
    blockers = await broker.locator(".blockers").inner_text()
    assert "Upload to this deal a document labelled “Privacy disclosure”." in blockers
    assert "Credit guide" not in blockers and "Set your privacy disclosure" not in blockers, blockers
    await check_page(broker, "portal-deal-blocked-documents")
    summary = await try_to_share(broker, a.url, two["id"])
    assert "“Privacy disclosure”" in summary and "Credit guide" not in summary, summary
    assert "Set your privacy disclosure" not in summary, summary
    assert not [m for m in smtp.messages if "ana" in str(m["To"])]  # no invitation went
    # and deal one, whose documents were there all along, may now be shared
    await broker.goto(f"{a.url}/deals/{one['id']}/portal")
    assert await broker.locator(".blockers").count() == 0


async def test_without_status_bar_or_fact_find_first_the_client_lands_on_a_bare_dashboard(
        node_factory, browser, smtp) -> None:
    a = await node_factory("Summit", **smtp_settings(smtp))
    setup = await deal_with_applicants(a)
    deal = setup["deal"]
    flow = await ready_to_share(a, deal["id"])
    await full_flow(a, deal)  # the stage has a video: it goes with the bar
    broker = await new_page(browser)
    await choose_password(broker, a.extra["password_link"])
    await broker.goto(f"{a.url}/settings/portal")
    await broker.get_by_label("Show the deal status bar").uncheck()
    await broker.get_by_label("Show the client profile when the client signs in for the first time").uncheck()
    await broker.get_by_role("button", name="Save settings").click()
    await broker.wait_for_load_state()
    assert "saved" in (await broker.locator(".flash").inner_text()).lower()
    await share(a, deal["id"], setup["contacts"][0]["id"], flow, see_others=False, documents=["Photo ID"])
    client = await new_page(browser)
    asked = await players_answered_locally(client)
    await client_sign_in(client, a.url, "ana@example.com",
                         passcode_of_mail(await smtp.wait_for("ana@example.com", "your client portal")))
    # not the fact find (nothing is answered yet), and no stage bar, stage or video
    await client.wait_for_url(re.compile(r".*/client/dashboard$"))
    main = await client.locator("main").inner_text()
    assert "Where it stands" not in main and "Lead" not in main, main
    assert await client.locator(".stage-bar").count() == 0 and await client.locator("iframe").count() == 0
    assert "3 sections still to answer" in main, main
    assert asked == []
    await check_page(client, "client-dashboard-bare")
