"""Refer, Referrals and Opportunities in real Chromium, between two real nodes with a real
SMTP server: a broker refers a deal with consent and two chosen fields, checks the
preview field by field, confirms; the receiving owner is mailed, accepts and moves the
deal two stages; the referrer sees the timeline and the verified receipt, and is mailed.
A tampered final POST sends nothing; names are shown as text; bad input gets an error
page with a stable code."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from refer_kit import (
    DISCLOSURE,
    client_deal,
    fill_referral,
    referral_rows,
    setup_pair,
    signed_in,
    wait_for,
)
from web_kit import check_page, choose_password, link_in, new_page, text_of

from node.mail.queue import set_mail_choices

SCRIPT = "<script>alert(1)</script>"


async def _outbox(node) -> list[dict]:
    return (await node.api("GET", "/api/v1/outbox"))["outbox"]


async def test_refer_preview_confirm_receive_work_and_see_the_loop(node_factory, browser, smtp) -> None:
    pair = await setup_pair(node_factory, smtp)
    a, b = pair.a, pair.b
    deal_id, _ = await client_deal(a, pair.workflow, pair.bea["id"])
    page = await signed_in(browser, pair.bea)

    # -- the form: only what the connection allows is offered
    await page.goto(f"{a.url}/deals/{deal_id}/refer")
    assert await page.get_by_role("heading", level=1).inner_text() == "Refer Purchase at 12 Harbour St"
    assert await page.get_by_label("Organisation").input_value() == pair.connection_id
    assert await page.get_by_label("Referring agent").locator("option:checked").inner_text() == "Bea Broker"
    assert await page.get_by_label("Type of referral").input_value() == "mortgage"
    assert await page.get_by_label("Phone", exact=True).count() == 0  # the connection does not allow it
    assert "does not accept: Deal type, Deal owner (name and e-mail), Phone, Address, Date of birth" \
        in await page.inner_text("main")
    await check_page(page, "refer-form")

    # -- nothing filled in: the errors, at the top and beside each field
    await page.get_by_role("button", name="Preview what will be sent").click()
    summary = page.locator(".error-summary")
    assert "Tick each client who consented" in await summary.inner_text()
    assert "Choose how the client gave consent" in await summary.inner_text()
    await check_page(page, "refer-form-errors", phone_too=False)

    # -- the preview: the two chosen fields travel; custom fields, documents, notes stay
    await fill_referral(page)
    await page.get_by_role("button", name="Preview what will be sent").click()
    assert await page.get_by_role("heading", level=1).inner_text() == "Check what will be sent"
    travels = await page.inner_text("section.travels")
    stays = await page.inner_text("section.stays")
    for shown in ("First name\nJo", "E-mail address\njo@example.com", "Deal title\nPurchase at 12 Harbour St",
                  "Referral type\nmortgage", "Please call Jo after 5pm."):
        assert shown in travels, (shown, travels)
    for hidden in ("Citizen", "+61 400", "teal", "60/40", "payslip", "650000", "1988"):
        assert hidden not in travels, hidden
    for kept in ("Custom field: commission_split\n60/40", "Custom field: favourite_colour\nteal",
                 "Documents\npayslip.pdf (Payslip)", "History notes\n1 note", "Last name\nCitizen (not chosen)",
                 "Phone\n+61 400 000 000 (this connection does not allow it)", "Amount\nAUD 650,000 (not chosen)",
                 "Labels\nvip"):
        assert kept in stays, (kept, stays)
    await check_page(page, "refer-preview")

    # -- the confirmation says it cannot be recalled
    await page.get_by_role("button", name="Continue").click()
    assert await page.get_by_role("heading", level=1).inner_text() == "Send this referral?"
    assert "cannot be recalled" in await page.inner_text(".warning")
    await check_page(page, "refer-confirm")

    # -- a tampered final POST (a field the connection does not allow) sends nothing
    before = len(await _outbox(a))
    await page.evaluate("""() => {
        const form = document.querySelector('form[action$="/refer/send"]');
        const input = document.createElement('input');
        input.type = 'hidden'; input.name = 'fields'; input.value = 'contacts.phone';
        form.appendChild(input);
    }""")
    async with page.expect_response(re.compile(r".*/refer/send$")) as answer:
        await page.get_by_role("button", name="Send the referral").click()
    assert (await answer.value).status == 400
    assert "Harbour Realty does not accept: Phone" in await page.inner_text(".error-summary")
    assert len(await _outbox(a)) == before
    assert await referral_rows(a, "sender") == []

    # -- the form kept every choice but the refused field: preview, confirm, send
    assert await page.get_by_label("Jo Citizen consented to this referral").is_checked()
    assert await page.get_by_label("Message to").input_value() == "Please call Jo after 5pm.\nThanks!"
    await page.get_by_role("button", name="Preview what will be sent").click()
    await page.get_by_role("button", name="Continue").click()
    await page.get_by_role("button", name="Send the referral").click()
    await page.wait_for_url(re.compile(r".*/referrals/ref_[^/]+$"))
    local_id = page.url.rsplit("/", 1)[1]
    assert "Referral sent to Harbour Realty. It cannot be recalled." in await page.inner_text(".flash")
    sent = await a.api("GET", f"/api/v1/referrals/{local_id}")
    offer = sent["referral"]["offer"]
    assert offer["shared_fields"] == ["contacts.email", "contacts.first_name", "deal.title"]
    assert offer["contacts"][0]["first_name"] == "Jo" and "phone" not in offer["contacts"][0]
    assert offer["message"] == "Please call Jo after 5pm.\nThanks!"  # the newline survived two hidden fields

    # -- Harbour's owner is mailed; the mail has no client details, and links the referral
    mail = await smtp.wait_for("owen@harbour.example", "New mortgage referral from Acme Mortgages")
    body = text_of(mail)
    assert "Purchase at 12 Harbour St" in body and "Bea Broker" in body
    assert "jo@example.com" not in body and "Jo" not in body.replace("Purchase", "")
    link = link_in(mail, re.escape(b.url) + r"/referrals/\S+")

    # -- at Harbour: accept, and move the deal two stages, from the referral page
    owen = await signed_in(browser, pair.owen)
    waiting = await owen.inner_text("section[aria-labelledby='h-received']")  # Home, after sign-in
    assert "Purchase at 12 Harbour St" in waiting and "from Acme Mortgages" in waiting
    await owen.goto(link)
    assert await owen.get_by_role("heading", level=1).inner_text() == "Purchase at 12 Harbour St"
    assert "Received from\nAcme Mortgages" in await owen.inner_text("dl.facts")
    await check_page(owen, "referral-received")
    await owen.get_by_role("button", name="Accept the referral").click()
    assert "Accepted. Acme Mortgages is told." in await owen.inner_text(".flash")
    for stage in ("Contacted", "Viewing"):
        await owen.get_by_label("Move the deal to stage").select_option(label=stage)
        await owen.get_by_role("button", name="Move", exact=True).click()
        assert f"Moved to stage {stage}." in await owen.inner_text(".flash")
    timeline = await owen.inner_text(".timeline")
    assert "Accepted" in timeline and "stage Contacted" in timeline and "stage Viewing" in timeline
    await check_page(owen, "referral-received-worked")

    # -- at Acme: the timeline with those updates, and the receipt verified with its digest
    async def loop_closed() -> bool:
        await page.goto(f"{a.url}/referrals/{local_id}")
        return "at stage Viewing" in await page.inner_text(".timeline")

    await wait_for(loop_closed)
    timeline = await page.inner_text(".timeline")
    for step in ("Sent to Harbour Realty", "Delivered", "Accepted", "In progress at stage Contacted",
                 "In progress at stage Viewing"):
        assert step in timeline, (step, timeline)
    receipt = await page.inner_text("section.receipt")
    assert "Verified just now" in receipt
    delivered = next(i for i in (await a.api("GET", f"/api/v1/outbox?subject_id={local_id}"))["outbox"]
                     if i["type"].startswith("referral-offer/"))
    assert delivered["sha256"] in receipt
    await check_page(page, "referral-sent")

    # -- the referring agent is mailed about the updates
    update = await smtp.wait_for("bea@acme.example", "Referral update from Harbour Realty")
    assert f"{a.url}/referrals/{local_id}" in text_of(update)

    # -- both lists, by name
    await page.goto(f"{a.url}/referrals?side=sent")
    row = await page.locator("tbody tr").first.inner_text()
    for name in ("Purchase at 12 Harbour St", "Harbour Realty", "Jo", "Mortgage", "Bea Broker", "In progress"):
        assert name in row, (name, row)
    assert "ref_" not in await page.inner_text("main") and pair.connection_id not in await page.inner_text("main")
    await check_page(page, "referrals-sent")
    await owen.goto(f"{b.url}/referrals")
    row = await owen.locator("tbody tr").first.inner_text()
    for name in ("Purchase at 12 Harbour St", "Acme Mortgages", "Owen Owner", "Bea Broker"):
        assert name in row, (name, row)
    await owen.get_by_label("Status").select_option("won")
    await owen.get_by_role("button", name="Show").click()
    assert "No referral received is won." in await owen.inner_text("main")
    await owen.goto(f"{b.url}/referrals?side=received")
    await check_page(owen, "referrals-received")


async def _no_script_ran(page, dialogs: list) -> None:
    """The name shows as text: no inline script made it into the page, none ran."""
    assert await page.get_by_text(SCRIPT, exact=False).count() >= 1, await page.inner_text("main")
    assert await page.locator("script:not([src])").count() == 0
    assert dialogs == []


async def test_a_client_named_like_a_script_is_shown_as_text(node_factory, browser, smtp) -> None:
    pair = await setup_pair(node_factory, smtp)
    a, b = pair.a, pair.b
    deal_id, contact_id = await client_deal(a, pair.workflow, pair.bea["id"], first=SCRIPT,
                                            title=f"{SCRIPT} at 1 Main St")
    await a.api("POST", "/api/v1/opportunities", {"deal_id": deal_id, "contact_id": contact_id,
                                                  "referral_type": "insurance", "outcome": "not_raised"}, expect=201)
    page = await signed_in(browser, pair.bea)
    dialogs: list = []
    page.on("dialog", lambda d: dialogs.append(d.message))

    await page.goto(f"{a.url}/deals/{deal_id}/refer")
    await _no_script_ran(page, dialogs)
    await fill_referral(page, client=f"{SCRIPT} Citizen", message=f"About {SCRIPT}")
    await page.get_by_role("button", name="Preview what will be sent").click()
    await _no_script_ran(page, dialogs)
    assert SCRIPT in await page.inner_text("section.travels")  # the first name travels, as text
    await page.get_by_role("button", name="Continue").click()
    await _no_script_ran(page, dialogs)
    await page.get_by_role("button", name="Send the referral").click()
    await page.wait_for_url(re.compile(r".*/referrals/ref_[^/]+$"))
    await _no_script_ran(page, dialogs)
    await check_page(page, "referral-sent-script-name", phone_too=False)
    await page.goto(f"{a.url}/referrals?side=sent")
    await _no_script_ran(page, dialogs)
    await page.goto(f"{a.url}/opportunities")
    await _no_script_ran(page, dialogs)

    async def landed() -> bool:
        return len(await referral_rows(b, "receiver")) == 1

    await wait_for(landed)
    # B's owner: the listener is on before the first page loads (signing in lands on Home)
    owen = await new_page(browser)
    owen.on("dialog", lambda d: dialogs.append(d.message))
    await choose_password(owen, pair.owen["password_link"])
    waiting = owen.locator("section[aria-labelledby='h-received']")
    assert f"{SCRIPT} at 1 Main St" in await waiting.inner_text()  # Home's "Referrals waiting"
    await _no_script_ran(owen, dialogs)
    await owen.goto(f"{b.url}/referrals")
    await _no_script_ran(owen, dialogs)
    await owen.get_by_role("link", name=f"{SCRIPT} at 1 Main St").click()
    await _no_script_ran(owen, dialogs)
    await owen.get_by_role("button", name="Accept the referral").click()
    await _no_script_ran(owen, dialogs)
    # the deal the referral was filed as, on B
    await owen.get_by_role("link", name=f"{SCRIPT} at 1 Main St").click()
    await owen.wait_for_url(re.compile(r".*/deals/[^/]+$"))
    assert await owen.get_by_role("heading", level=1).inner_text() == f"{SCRIPT} at 1 Main St"
    contacts = owen.locator("section", has=owen.get_by_role("heading", name="Contacts", exact=True))
    assert f"{SCRIPT} primary" in await contacts.inner_text()  # the client (the first name travelled)
    assert f"Message: About {SCRIPT}" in await owen.inner_text("main")  # the note the referral left
    await _no_script_ran(owen, dialogs)
    # the mail's HTML part escapes the title too
    mail = await smtp.wait_for("owen@harbour.example", "New mortgage referral")
    assert "&lt;script&gt;" in mail.get_body(preferencelist=("html",)).get_content()


async def _csrf(page) -> str:
    return await page.locator('input[name="csrf"]').first.get_attribute("value")


async def _post(page, url: str, form: dict) -> tuple[int, str]:
    answer = await page.request.post(url, form={"csrf": await _csrf(page), **form}, max_redirects=0)
    return answer.status, await answer.text()


async def test_bad_input_and_other_organisations_ids_get_error_pages_and_change_nothing(
        node_factory, browser, smtp) -> None:
    pair = await setup_pair(node_factory, smtp)
    a, b = pair.a, pair.b
    deal_id, contact_id = await client_deal(a, pair.workflow, pair.bea["id"])
    consent = {"contact_ids": [contact_id], "method": "written", "disclosure_version": "v1",
               "disclosure_text": DISCLOSURE}
    sent = (await a.api("POST", f"/api/v1/deals/{deal_id}/refer", {
        "connection_id": pair.connection_id, "referring_agent_user_id": pair.bea["id"],
        "shared_fields": ["contacts.first_name"], "consent": consent}, expect=202))["referral"]

    async def landed() -> bool:
        return len(await referral_rows(b, "receiver")) == 1

    await wait_for(landed)
    received = (await referral_rows(b, "receiver"))[0]
    page = await signed_in(browser, pair.bea)  # a broker: the referral pages are every role's, as the API's are
    for url in ("/referrals", "/referrals?side=sent", f"/referrals/{sent['local_id']}", "/opportunities"):
        assert (await page.goto(a.url + url)).status == 200, url

    for url, status, code in (
        (f"/referrals/{received['local_id']}", 404, "not_found"),  # Harbour's id, at Acme
        ("/referrals/ref_nothing", 404, "not_found"),
        ("/referrals?side=both", 400, "invalid"),
        ("/referrals?side=sent&status=received", 400, "invalid"),
        ("/referrals?offset=-1", 400, "invalid"),
        ("/referrals?offset=x", 400, "invalid"),
        ("/deals/deal_nothing/refer", 404, "not_found"),
        (f"/deals/{deal_id}/refer?opportunity=opp_nothing", 404, "not_found"),
        ("/deals/deal_nothing/opportunity", 404, "not_found"),
        ("/opportunities?state=everything", 400, "invalid"),
        ("/opportunities/opp_nothing/close", 404, "not_found"),
    ):
        answer = await page.goto(a.url + url)
        assert answer.status == status, (url, answer.status)
        assert code in await page.inner_text("main"), url
        # the page leads with a sentence for people; the code stays, small
        lead = await page.locator("main .lead").inner_text()
        assert lead[:1].isupper() and "_" not in lead, (url, lead)
        assert await page.locator(".error-code small code").inner_text() == code, url
    await check_page(page, "referrals-error-page", phone_too=False)

    await page.goto(f"{a.url}/referrals/{sent['local_id']}")
    outbox = len(await _outbox(a))
    for url, form, status in (
        (f"/referrals/{sent['local_id']}/status", {"status": "accepted"}, 400),  # a sent one is not ours to accept
        (f"/referrals/{sent['local_id']}/status", {"status": "forgotten"}, 400),
        (f"/referrals/{received['local_id']}/status", {"status": "accepted"}, 404),
        (f"/referrals/{sent['local_id']}/move", {"stage": pair.workflow["stages"][1]["id"]}, 400),
        ("/deferred/dfr_nothing/cancel", {}, 404),
        ("/opportunities/opp_nothing/close", {"reason": "x"}, 404),
        (f"/deals/{deal_id}/refer/send", {"connection": "con_elsewhere", "referral_type": "mortgage",
                                          "agent": pair.bea["id"], "consented": contact_id, "method": "verbal",
                                          "disclosure_version": "v1", "disclosure_text": "x"}, 400),
        (f"/deals/{deal_id}/refer/send", {"connection": pair.connection_id, "referral_type": "Not A Token!",
                                          "agent": pair.bea["id"], "consented": contact_id, "method": "verbal",
                                          "disclosure_version": "v1", "disclosure_text": "x", "again": "yes"}, 400),
        (f"/deals/{deal_id}/refer/send", {"connection": pair.connection_id, "referral_type": "mortgage",
                                          "agent": pair.bea["id"], "consented": "ct_someone_else", "method": "verbal",
                                          "disclosure_version": "v1", "disclosure_text": "x", "again": "yes"}, 400),
    ):
        got, text = await _post(page, a.url + url, form)
        assert got == status, (url, form, got, text[:500])
    # the same deal again at the same organisation needs "again", said on purpose
    got, text = await _post(page, f"{a.url}/deals/{deal_id}/refer/send", {
        "connection": pair.connection_id, "referral_type": "mortgage", "agent": pair.bea["id"],
        "consented": contact_id, "method": "verbal", "disclosure_version": "v1", "disclosure_text": "x"})
    assert got == 400 and "already referred to Harbour Realty" in text and "Refer it there again anyway" in text
    assert "ref_" not in text.split("<main", 1)[1].split("<form", 1)[0]  # named, not numbered
    # without the session's CSRF token, nothing is read
    answer = await page.request.post(f"{a.url}/deals/{deal_id}/refer/send", form={"connection": pair.connection_id})
    assert answer.status == 403 and "csrf_failed" in await answer.text()
    assert len(await _outbox(a)) == outbox and len(await referral_rows(a, "sender")) == 1

    # at Harbour: a decline needs its reason; a move to another workflow's stage is refused
    owen = await signed_in(browser, pair.owen)
    await owen.goto(f"{b.url}/referrals/{received['local_id']}")
    await owen.get_by_role("button", name="Decline the referral").click()
    assert "Say why you decline" in await owen.inner_text(".error-summary")
    assert (await b.api("GET", f"/api/v1/referrals/{received['local_id']}"))["referral"]["state"] == "received"
    await check_page(owen, "referral-decline-error", phone_too=False)
    got, _ = await _post(owen, f"{b.url}/referrals/{received['local_id']}/move",
                         {"stage": pair.inbound["stages"][1]["id"]})
    assert got == 400  # not accepted yet
    await owen.get_by_label("Reason for declining").fill("We do not cover that suburb.")
    await owen.get_by_role("button", name="Decline the referral").click()
    assert "Declined. Acme Mortgages is told, with your reason." in await owen.inner_text(".flash")
    assert "nothing more to do" in await owen.inner_text("main")

    async def told() -> bool:
        await page.goto(f"{a.url}/referrals/{sent['local_id']}")
        return "We do not cover that suburb." in await page.inner_text(".timeline")

    await wait_for(told)
    mail = await smtp.wait_for("bea@acme.example", "Referral update from Harbour Realty: declined")
    assert "We do not cover" not in text_of(mail)  # the reason is on the page, after sign-in


async def test_follow_ups_close_convert_and_a_referral_that_waits_for_a_stage(node_factory, browser, smtp) -> None:
    pair = await setup_pair(node_factory, smtp)
    a = pair.a
    deal_id, contact_id = await client_deal(a, pair.workflow, pair.bea["id"])
    other_id, _ = await client_deal(a, pair.workflow, pair.bea["id"], first="Sam", title="Refinance for Sam")
    today = datetime.now(UTC).date()
    page = await signed_in(browser, pair.bea)

    # -- recorded from the deal, through the form
    await page.goto(f"{a.url}/deals/{deal_id}/opportunity")
    await page.get_by_role("button", name="Record it").click()
    assert "Choose what happened" in await page.inner_text(".error-summary")
    await page.get_by_label("A future opportunity").check()
    await page.get_by_label("Type of referral").fill("insurance")
    await page.get_by_label("Client", exact=True).select_option(label="Jo Citizen")
    await page.get_by_label("Follow up on").fill((today - timedelta(days=1)).isoformat())
    await page.get_by_role("button", name="Record it").click()
    assert "is in the past" in await page.inner_text(".error-summary")
    await check_page(page, "opportunity-new-error", phone_too=False)
    await page.get_by_label("Follow up on").fill((today + timedelta(days=3)).isoformat())
    await page.get_by_label("Reason", exact=True).fill("Renewal is due in spring.")
    await page.get_by_role("button", name="Record it").click()
    await page.wait_for_url(re.compile(r".*/opportunities$"))
    assert "It is on the follow-up list." in await page.inner_text(".flash")

    # -- one due today, one overdue (its date moved back, as time would), one undated
    for body in ({"deal_id": deal_id, "referral_type": "conveyancing", "outcome": "future",
                  "follow_up_on": today.isoformat()},
                 {"deal_id": other_id, "referral_type": "mortgage", "outcome": "future",
                  "follow_up_on": today.isoformat()},
                 {"deal_id": other_id, "referral_type": "planning", "outcome": "other", "reason": "Not yet."}):
        await a.api("POST", "/api/v1/opportunities", body, expect=201)
    await a.node.db.write(lambda c: c.execute(
        "UPDATE opportunities SET follow_up_on = ? WHERE referral_type = 'mortgage'",
        ((today - timedelta(days=2)).isoformat(),)))
    await page.goto(f"{a.url}/opportunities")
    for section, names in (("overdue", ["Refinance for Sam", "Mortgage", "overdue"]),
                           ("today", ["Purchase at 12 Harbour St", "Conveyancing"]),
                           ("upcoming", ["Purchase at 12 Harbour St", "Jo Citizen", "Insurance",
                                         "Renewal is due in spring.", "Bea Broker"]),
                           ("undated", ["Refinance for Sam", "Planning", "other reason: Not yet."])):
        text = await page.inner_text(f"section[aria-labelledby='h-{section}']")
        for name in names:
            assert name in text, (section, name, text)
    assert "opp_" not in await page.inner_text("main") and "deal_" not in await page.inner_text("main")
    await check_page(page, "opportunities")

    # -- close one, with a reason
    await page.locator("section[aria-labelledby='h-undated']").get_by_role("link", name="Close").click()
    await check_page(page, "opportunity-close")
    await page.get_by_role("button", name="Close the opportunity").click()
    assert "Say why you stop following it up" in await page.inner_text(".error-summary")
    await page.get_by_label("Why you stop following it up").fill("They use their own planner.")
    await page.get_by_role("button", name="Close the opportunity").click()
    assert "The planning opportunity is closed." in await page.inner_text(".flash")
    assert "Planning" not in await page.inner_text("section[aria-labelledby='h-undated']")

    # -- turn the overdue one into a referral that waits for the deal to reach a stage
    await page.locator("section[aria-labelledby='h-overdue']").get_by_role("link", name="Refer now").click()
    assert "turns the mortgage opportunity" in await page.inner_text("main")
    assert await page.get_by_label("Type of referral").input_value() == "mortgage"
    await fill_referral(page, client="Sam Citizen", fields=("Last name",))
    await page.get_by_label("When to send").select_option(label="When the deal reaches stage Offer")
    await page.get_by_role("button", name="Preview what will be sent").click()
    await page.get_by_role("button", name="Continue").click()
    assert "waits here until the deal reaches stage Offer" in await page.inner_text(".warning")
    await page.get_by_role("button", name="Save the referral to send later").click()
    await page.wait_for_url(re.compile(r".*/referrals\?side=sent$"))
    assert "will be sent when the deal reaches stage Offer" in await page.inner_text(".flash")
    waiting = await page.inner_text("section[aria-labelledby='h-waiting']")
    for name in ("Refinance for Sam", "Harbour Realty", "Offer", "Bea Broker"):
        assert name in waiting, (name, waiting)
    await check_page(page, "referrals-sent-waiting")
    assert await referral_rows(a, "sender") == []  # nothing has left yet
    await page.goto(f"{a.url}/opportunities?state=converted")
    assert "Referral waiting for a stage" in await page.inner_text("main")
    await check_page(page, "opportunities-converted", phone_too=False)

    # -- the one due today is referred now: the opportunity links its referral
    await page.goto(f"{a.url}/opportunities")
    await page.locator("section[aria-labelledby='h-today']").get_by_role("link", name="Refer now").click()
    assert await page.get_by_label("Type of referral").input_value() == "conveyancing"
    await fill_referral(page, fields=())
    await page.get_by_role("button", name="Preview what will be sent").click()
    await page.get_by_role("button", name="Continue").click()
    await page.get_by_role("button", name="Send the referral").click()
    await page.wait_for_url(re.compile(r".*/referrals/ref_[^/]+$"))
    local_id = page.url.rsplit("/", 1)[1]
    await page.goto(f"{a.url}/opportunities?state=converted")
    assert await page.get_by_role("link", name="Referred").get_attribute("href") == f"/referrals/{local_id}"

    # -- the waiting one can be cancelled until its stage comes
    await page.goto(f"{a.url}/referrals?side=sent")
    await page.get_by_role("button", name="Cancel").click()
    assert "The waiting referral is cancelled. Nothing was sent." in await page.inner_text(".flash")
    assert await page.locator("section[aria-labelledby='h-waiting']").count() == 0
    assert [r["local_id"] for r in await referral_rows(a, "sender")] == [local_id]
    await page.goto(f"{a.url}/opportunities?state=converted")
    assert "Referral cancelled before it was sent" in await page.inner_text("main")


async def test_the_referral_mails_honour_each_users_choice(node_factory, smtp) -> None:
    pair = await setup_pair(node_factory, smtp)
    a, b = pair.a, pair.b
    deal_id, contact_id = await client_deal(a, pair.workflow, pair.bea["id"])
    await a.node.db.write(lambda c: set_mail_choices(c, pair.bea["id"], {"new_referral"}))  # no status updates
    sent = (await a.api("POST", f"/api/v1/deals/{deal_id}/refer", {
        "connection_id": pair.connection_id, "referring_agent_user_id": pair.bea["id"],
        "consent": {"contact_ids": [contact_id], "method": "written", "disclosure_version": "v1",
                    "disclosure_text": DISCLOSURE}}, expect=202))["referral"]
    await smtp.wait_for("owen@harbour.example", "New mortgage referral from Acme Mortgages")
    received = (await referral_rows(b, "receiver"))[0]
    await b.api("POST", f"/api/v1/referrals/{received['local_id']}/status", {"status": "accepted"})

    async def applied() -> bool:
        return (await a.api("GET", f"/api/v1/referrals/{sent['local_id']}"))["referral"]["state"] == "accepted"

    await wait_for(applied)
    kinds = await a.node.db.read(lambda c: [r[0] for r in c.execute("SELECT kind FROM mail_queue")])
    assert "status_update" not in kinds  # Bea turned it off; nobody else is told in her place
    assert await b.node.db.read(lambda c: [r[0] for r in c.execute("SELECT kind FROM mail_queue")]) == ["new_referral"]
