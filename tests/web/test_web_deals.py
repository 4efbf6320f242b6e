"""The deal pages in a real browser against a real node: the board, deal and contact
forms, moving a deal by keyboard, notes, search, and names that look like markup shown
as text. Documents and CSV are in ``test_web_deal_files.py``; permissions and bad input
in ``test_web_deals_guard.py``."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from web_kit import PHONE, check_page, choose_password, new_page

XSS = "<script>alert(1)</script>"


async def look(page: Any, name: str, *, phone_too: bool = True) -> None:
    """``check_page`` (axe, screenshots), and at phone width nothing wider than the screen."""
    await check_page(page, name, phone_too=phone_too)
    if phone_too:
        size = page.viewport_size
        await page.set_viewport_size(PHONE)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{name}: {width}px wide at phone width"
        await page.set_viewport_size(size)


async def wait_for(predicate: Any, within_s: float = 20.0) -> None:
    for _ in range(int(within_s / 0.1)):
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def admin_user_id(a: Any) -> str:
    users = (await a.api("GET", "/api/v1/users"))["users"]
    return next(u["id"] for u in users if u["email"] == a.extra["admin_email"])


async def workflow(a: Any, name: str = "Home loans",
                   stages: tuple[str, ...] = ("Lead", "Application", "Approved", "Settled")) -> dict[str, Any]:
    body = {"name": name, "owner_user_id": await admin_user_id(a), "stage_names": list(stages)}
    return (await a.api("POST", "/api/v1/workflows", body, expect=201))["workflow"]


def no_dialogs(page: Any) -> list[str]:
    """Any alert() a page runs is recorded here (and dismissed)."""
    seen: list[str] = []

    async def on_dialog(dialog: Any) -> None:
        seen.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


async def test_new_deal_with_errors_then_valid_moved_by_keyboard_with_a_note(node_factory, browser) -> None:
    a = await node_factory("Acme")
    page = await new_page(browser)
    await choose_password(page, a.extra["password_link"])

    # no workflow yet: the board says so, and the admin creates one through the form
    await page.goto(a.url + "/deals")
    assert "There is no workflow yet" in await page.content()
    await look(page, "deals-board-empty")
    await page.get_by_role("link", name="Create the first workflow").click()
    await page.get_by_role("button", name="Create workflow").click()
    assert "Enter the stages, one a line" in await page.locator(".error-summary").inner_text()
    await look(page, "workflow-new-errors")
    await page.get_by_label("Name", exact=True).fill("Home loans")
    await page.get_by_label("Stages").fill("Lead\nApplication\nApproved\nSettled")
    await page.get_by_label("Stage that means won (optional)").fill("Settled")
    await page.get_by_role("button", name="Create workflow").click()
    await page.wait_for_url(re.compile(r".*/deals\?workflow=Home%20loans"))
    assert [await h.text_content() for h in await page.locator(".column h2").all()] == [
        "Lead, 0 deals", "Application, 0 deals", "Approved, 0 deals", "Settled, 0 deals"]

    # a new deal: wrong first, the error summary links to each field and the fields say why
    await page.get_by_role("link", name="New deal").click()
    await look(page, "deal-new")
    await page.get_by_label("Amount (optional)").fill("lots")
    await page.get_by_role("button", name="Create deal").click()
    summary = page.locator(".error-summary")
    assert await summary.is_visible()
    assert await summary.get_by_role("link", name="Enter a title for the deal").count() == 1
    assert "Enter the amount as a number, such as 650000" in await summary.inner_text()
    assert await page.locator("#f-title").get_attribute("aria-invalid") == "true"
    assert await page.locator("#f-amount").get_attribute("aria-invalid") == "true"
    assert await page.locator("#f-amount").input_value() == "lots"  # what was typed stays
    await look(page, "deal-new-errors")
    await summary.get_by_role("link", name="Enter a title for the deal").click()
    assert await page.evaluate("document.activeElement.id") == "f-title"
    # now right: a title, an amount written with separators, a new client
    await page.get_by_label("Title").fill("Purchase at 12 Harbour St")
    await page.get_by_label("Amount (optional)").fill("650,000")
    await page.get_by_label("Currency").fill("aud")
    await page.get_by_label("Type (optional)").fill("Home loan")
    await page.get_by_label("First name").fill("Sam")
    await page.get_by_label("Last name").fill("Client")
    await page.get_by_label("E-mail address").fill("sam@example.com")
    await page.get_by_role("button", name="Create deal").click()
    await page.wait_for_url(re.compile(r".*/deals/deal_[a-z0-9]+$"))
    deal_id = page.url.rsplit("/", 1)[1]
    assert "is created" in await page.locator(".flash").inner_text()
    deal = (await a.api("GET", f"/api/v1/deals/{deal_id}"))["deal"]
    assert (deal["amount"], deal["currency"], deal["deal_type"]) == ("650000", "AUD", "home-loan")
    facts = await page.locator("dl.facts").first.inner_text()
    assert "Home loan" in facts and "home-loan" not in facts  # the type in words, stored as a token
    assert await page.get_by_role("link", name="Sam Client").count() == 1
    assert await page.get_by_role("link", name="Refer this deal").first.get_attribute("href") == f"/deals/{deal_id}/refer"

    # a note, through the textarea
    await page.get_by_label("Add a note").fill("Called Sam.\nPre-approval next week.")
    await page.get_by_role("button", name="Add note").click()
    await page.wait_for_url(re.compile(r".*#notes$"))
    assert "Pre-approval next week." in await page.locator(".notes").inner_text()
    notes = (await a.api("GET", f"/api/v1/deals/{deal_id}/notes"))["notes"]
    assert [n["body"] for n in notes] == ["Called Sam.\nPre-approval next week."]

    # on the board: move it to Approved by keyboard alone (focus, Tab, arrows, Tab, Enter)
    await page.goto(a.url + "/deals")
    card = page.locator(".deal-card", has_text="Purchase at 12 Harbour St")
    assert "AUD 650,000" in await card.inner_text() and "Sam Client" in await card.inner_text()
    await look(page, "deals-board")
    await card.get_by_role("link", name="Purchase at 12 Harbour St").focus()
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == f"mv-{deal_id}"
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowDown")
    assert await page.locator(f"#mv-{deal_id} option:checked").inner_text() == "Approved"
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Move Purchase at 12 Harbour St"
    await page.keyboard.press("Enter")
    await page.wait_for_load_state()
    assert "Moved “Purchase at 12 Harbour St” to Approved." in await page.locator(".flash").inner_text()
    deal = (await a.api("GET", f"/api/v1/deals/{deal_id}"))["deal"]
    stages = {s["name"]: s["id"] for s in (await a.api("GET", "/api/v1/workflows"))["workflows"][0]["stages"]}
    assert deal["stage_id"] == stages["Approved"]
    approved = page.locator(".column").nth(2)
    assert await approved.locator("h2").text_content() == "Approved, 1 deal"
    assert await approved.locator(".deal-card").count() == 1

    # the deal page's timeline has the move (recorded by the node's deal-moved hook)
    await page.goto(a.url + f"/deals/{deal_id}")
    timeline = await page.locator("#timeline").inner_text()
    assert "Lead → Approved" in timeline and "Pre-approval next week." in timeline
    await look(page, "deal")

    # edit the deal: a wrong owner-less currency is refused on its field, then saved
    await page.get_by_role("link", name="Edit deal").click()
    await page.get_by_label("Currency").fill("")
    await page.get_by_role("button", name="Save changes").click()
    assert "Enter the currency of the amount" in await page.locator(".error-summary").inner_text()
    await look(page, "deal-edit-errors")
    await page.get_by_label("Currency").fill("NZD")
    await page.get_by_label("Title").fill("Purchase at 14 Harbour St")
    await page.get_by_role("button", name="Save changes").click()
    await page.wait_for_url(re.compile(rf".*/deals/{deal_id}$"))
    assert await page.get_by_role("heading", level=1).inner_text() == "Purchase at 14 Harbour St"


async def test_contacts_search_and_names_that_look_like_markup(node_factory, browser) -> None:
    a = await node_factory("Acme")
    wf = await workflow(a)
    page = await new_page(browser)
    dialogs = no_dialogs(page)
    await choose_password(page, a.extra["password_link"])

    # a contact through the form, with a bad e-mail first
    await page.goto(a.url + "/contacts")
    await look(page, "contacts-empty")
    await page.get_by_role("link", name="New contact").first.click()
    await page.get_by_label("First name").fill(XSS)
    await page.get_by_label("Last name").fill("Smith")
    await page.get_by_label("E-mail address").fill("not an address")
    await page.get_by_role("button", name="Add contact").click()
    assert "Enter an e-mail address like name@example.com" in await page.locator(".error-summary").inner_text()
    assert await page.locator("#f-email").get_attribute("aria-invalid") == "true"
    await look(page, "contact-new-errors")
    await page.get_by_label("E-mail address").fill("x@example.com")
    await page.get_by_role("button", name="Add contact").click()
    await page.wait_for_url(re.compile(r".*/contacts/ct_[a-z0-9]+$"))
    contact_id = page.url.rsplit("/", 1)[1]
    assert await page.get_by_role("heading", level=1).inner_text() == f"{XSS} Smith"
    await look(page, "contact")

    # a deal for them, from their page (the contact comes ticked), titled like markup too
    await page.get_by_role("link", name=re.compile("New deal for")).click()
    assert await page.get_by_label(f"{XSS} Smith (x@example.com)").is_checked()
    await page.get_by_label("Title").fill(f"Deal {XSS}")
    await page.get_by_role("button", name="Create deal").click()
    await page.wait_for_url(re.compile(r".*/deals/deal_[a-z0-9]+$"))
    deal_id = page.url.rsplit("/", 1)[1]
    assert await page.get_by_role("heading", level=1).inner_text() == f"Deal {XSS}"
    assert await page.get_by_role("link", name=f"{XSS} Smith").count() == 1
    assert "<script>alert(1)</script>" not in await page.content()  # escaped, never markup

    # another deal, with a second contact added from the deal page by finding them
    other = (await a.api("POST", "/api/v1/contacts", {"first_name": "Jo", "last_name": "Bloggs"}, expect=201))["contact"]
    await page.get_by_label("Find a contact to add").fill("Bloggs")
    await page.get_by_role("button", name="Find", exact=True).click()
    await page.get_by_label("Role of Jo Bloggs").select_option("co-applicant")
    await page.get_by_role("button", name="Add Jo Bloggs").click()
    await page.wait_for_url(re.compile(r".*#contacts$"))
    deal = (await a.api("GET", f"/api/v1/deals/{deal_id}"))["deal"]
    assert deal["contacts"] == [{"contact_id": contact_id, "role": "primary"},
                                {"contact_id": other["id"], "role": "co-applicant"}]

    # the board shows the names as text
    await page.goto(a.url + "/deals")
    card = page.locator(".deal-card")
    assert await card.get_by_role("link", name=f"Deal {XSS}").count() == 1
    assert f"{XSS} Smith, Jo Bloggs" in await card.inner_text()

    # search: by a contact's name finds the contact and their deals; nothing for nonsense
    await page.get_by_label("Search deals and contacts").first.fill("Bloggs")
    await page.get_by_label("Search deals and contacts").first.press("Enter")
    await page.wait_for_url(re.compile(r".*/search\?q=Bloggs"))
    found = page.locator(".cards")
    assert await found.get_by_role("link", name="Jo Bloggs").count() == 1
    assert await found.get_by_role("link", name=f"Deal {XSS}").count() == 1
    await look(page, "search")
    await page.goto(a.url + "/search?q=" + "%3Cscript%3E")
    assert await page.locator(".cards").get_by_role("link", name=f"{XSS} Smith").count() == 1
    assert await page.locator(".cards").get_by_role("link", name=f"Deal {XSS}").count() == 1
    await page.goto(a.url + "/search?q=nobody-at-all")
    assert "No deal matches “nobody-at-all”" in await page.content()

    # the contacts list, and the contact's page lists the deal
    await page.goto(a.url + "/contacts")
    assert await page.get_by_role("link", name=f"{XSS} Smith").count() == 1
    await look(page, "contacts")
    await page.goto(a.url + f"/contacts/{contact_id}")
    assert await page.get_by_role("link", name=f"Deal {XSS}").count() == 1
    assert "Home loans › Lead" in await page.content()
    await page.get_by_label("Add a note").fill(f"Met {XSS} at the open home.")
    await page.get_by_role("button", name="Add note").click()
    await page.wait_for_url(re.compile(r".*#notes$"))
    assert f"Met {XSS} at the open home." in await page.locator(".notes").inner_text()
    await page.get_by_role("link", name="Edit contact").click()
    await look(page, "contact-edit")
    await page.get_by_label("Phone number").fill("+61 400 000 000")
    await page.get_by_role("button", name="Save changes").click()
    await page.wait_for_url(re.compile(rf".*/contacts/{contact_id}$"))
    assert (await a.api("GET", f"/api/v1/contacts/{contact_id}"))["contact"]["phone"] == "+61 400 000 000"
    assert dialogs == []
    assert wf["name"] == "Home loans"


async def connect(sender: Any, receiver: Any) -> str:
    """``receiver`` invites ``sender`` to send it referrals; ``sender`` connects."""
    invite = await receiver.api("POST", "/api/v1/invitations", {"name": sender.name, "direction": "receive"})
    made = await sender.api("POST", "/api/v1/connections",
                            {"referral_url": invite["referral_url"], "referral_key": invite["referral_key"]})
    connection_id = made["connection"]["id"]

    async def active() -> bool:
        ours = (await sender.api("GET", "/api/v1/connections"))["connections"]
        theirs = (await receiver.api("GET", "/api/v1/connections"))["connections"]
        return all(any(c["id"] == connection_id and c["state"] == "active" for c in side) for side in (ours, theirs))

    await wait_for(active)
    return connection_id


async def test_the_deal_page_shows_referrals_both_ways_and_a_move_reports_back(node_factory, browser) -> None:
    agency, broker = await node_factory("Agency"), await node_factory("Broker")
    connection_id = await connect(agency, broker)
    wf = await workflow(agency, "Sales", ("Lead", "Listed", "Sold"))
    client = (await agency.api("POST", "/api/v1/contacts", {"first_name": "Jo", "last_name": "Citizen",
                                                            "email": "jo@example.com"}, expect=201))["contact"]
    deal = (await agency.api("POST", "/api/v1/deals", {
        "title": "Purchase at 12 Harbour St", "workflow_id": wf["id"], "stage_id": wf["stages"][0]["id"],
        "contacts": [{"contact_id": client["id"]}]}, expect=201))["deal"]
    consent = {"contact_ids": [client["id"]], "method": "verbal", "disclosure_version": "privacy-2026-07",
               "disclosure_text": "We share your details with our partner so they can contact you."}
    sent = (await agency.api("POST", f"/api/v1/deals/{deal['id']}/refer", {
        "connection_id": connection_id, "referring_agent_user_id": await admin_user_id(agency),
        "consent": consent}, expect=202))["referral"]

    async def landed() -> bool:
        return bool((await broker.api("GET", "/api/v1/deals?origin=referral"))["deals"])

    await wait_for(landed)
    theirs = (await broker.api("GET", "/api/v1/deals?origin=referral"))["deals"][0]

    # the broker's deal page: where it came from; moved through the page, which tells the agency
    page = await new_page(browser)
    await choose_password(page, broker.extra["password_link"])
    await page.goto(broker.url + f"/deals/{theirs['id']}")
    referrals = page.locator("#referrals")
    assert await referrals.get_by_role("link", name="Received from Agency").count() == 1
    assert await referrals.locator(".status").inner_text() == "Received"  # the state in words
    received = await page.locator("#timeline").inner_text()
    assert "Referral received from Agency" in received
    # the note says how and when the client consented in words, not as stored
    assert re.search(r"Client consent: verbal \(in person or by phone\), \d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d,",
                     received), received
    await page.get_by_label("Move to stage").select_option(label="Contacted")
    await page.get_by_role("button", name="Move", exact=True).click()
    await page.wait_for_load_state()
    assert "to Contacted" in await page.locator(".flash").inner_text()
    await look(page, "deal-received")

    async def reported() -> bool:
        return (await agency.api("GET", f"/api/v1/referrals/{sent['local_id']}"))["referral"]["state"] == "in-progress"

    await wait_for(reported)
    mine = await new_page(browser)
    await choose_password(mine, agency.extra["password_link"])
    await mine.goto(agency.url + f"/deals/{deal['id']}")
    link = mine.locator("#referrals").get_by_role("link", name="Sent to Broker")
    assert await link.get_attribute("href") == f"/referrals/{sent['local_id']}"
    assert await mine.locator("#referrals .status").inner_text() == "In progress"
    timeline = await mine.locator("#timeline").inner_text()
    assert "Referral update, Broker" in timeline and "in progress (Contacted)" in timeline
    assert "reports the referral in progress (stage Contacted)" in timeline and "in-progress" not in timeline
    # what travelled, as the preview names it
    assert "Shared: deal title, " in timeline and "contacts." not in timeline, timeline
    await look(mine, "deal-referred")
