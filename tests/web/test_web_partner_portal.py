"""The partner portal (issue 13) in a real browser against a real node and a real SMTP
server: the admin sets the portal up and adds partners, a partner signs in, creates a
deal, adds a note and a file; the broker works the deal; the partner sees the stage
move and only the shared note, and gets the e-mails they chose. Scoping by role is in
``test_web_partner_scope.py``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from typing import Any

from test_web_deals import look, no_dialogs, workflow
from web_kit import PASSWORD, choose_password, link_in, new_page, smtp_settings, text_of

from node.crm import portal
from protocol.messages import Consent
from protocol.models import validate

XSS = "<script>alert(1)</script>"


async def mails_of_kind(a: Any, kind: str) -> list[tuple[str, str]]:
    rows = await a.node.db.read(lambda conn: conn.execute(
        "SELECT to_addr, subject FROM mail_queue WHERE kind = ? ORDER BY created_at", (kind,)).fetchall())
    return [(r[0], r[1]) for r in rows]


async def add_broker(a: Any, name: str, email: str) -> tuple[str, str]:
    made = await a.api("POST", "/api/v1/users", {"email": email, "name": name, "role": "broker"}, expect=201)
    return made["user"]["id"], made["password_link"]


async def test_partner_portal_must_show(node_factory, browser, smtp, tmp_path) -> None:
    a = await node_factory("Acme", **smtp_settings(smtp))
    loans = await workflow(a, "Home loans", ("Lead", "Application", "Approved", "Settled"))
    insurance = await workflow(a, "Insurance", ("Quote", "Issued"))
    _, broker_link = await add_broker(a, "Bea Broker", "bea@acme.example")

    # 1. the admin sets up the portal and adds a partner assigned to a broker
    admin = await new_page(browser)
    await choose_password(admin, a.extra["password_link"])
    await admin.goto(a.url + "/admin")
    await admin.get_by_role("link", name="Partner portal").first.click()
    await admin.get_by_label("Partner default workflow").select_option(label="Home loans")
    await admin.get_by_label("A deal of mine moves to another stage").check()
    await admin.get_by_label("A broker adds a note for me").check()
    await look(admin, "partner-admin-settings")
    await admin.get_by_role("button", name="Save settings").click()
    assert "settings are saved" in await admin.locator(".flash").inner_text()
    await admin.get_by_role("link", name="Partners", exact=True).click()
    await look(admin, "partner-admin-list-empty")
    await admin.get_by_role("link", name="Add new partner").click()
    await admin.get_by_role("button", name="Add partner").click()
    assert "Enter the name" in await admin.locator(".error-summary").inner_text()
    await look(admin, "partner-admin-new-errors")
    await admin.get_by_label("Name").fill("Pat Partner " + XSS)
    await admin.get_by_label("E-mail address").fill("pat@accountants.example")
    await admin.get_by_label("Phone number").fill("+61 400 000 001")
    await admin.get_by_label("Bea Broker").check()
    await admin.get_by_role("button", name="Add partner").click()
    assert "We e-mailed them a link" in await admin.locator(".flash").inner_text()
    invite = await smtp.wait_for("pat@accountants.example", "partner portal")
    assert "Bea Broker" in text_of(invite)
    link = link_in(invite, r"https?://\S+/partner/set-password/\S+")

    # 5. a second partner, assigned to nobody, gets no e-mail
    await admin.get_by_role("link", name="Add new partner").click()
    await admin.get_by_label("Name").fill("Quinn Unassigned")
    await admin.get_by_label("E-mail address").fill("quinn@planners.example")
    await admin.get_by_label("Phone number").fill("0400 000 002")
    await admin.get_by_role("button", name="Add partner").click()
    assert "No log-in e-mail was sent: they are assigned to no broker" in await admin.locator(".flash").inner_text()
    await look(admin, "partner-admin-list")
    assert [to for to, _ in await mails_of_kind(a, "partner_added")] == ["pat@accountants.example"]

    # 2. the partner sets a password and sees an empty default workflow
    partner = await new_page(browser)
    dialogs = no_dialogs(partner)
    await partner.goto(link)
    await look(partner, "partner-set-password")
    await choose_password(partner, link)
    assert partner.url.endswith("/partner/")
    assert await partner.get_by_role("heading", level=1).inner_text() == "Home loans"
    assert "You have no deals here yet" in await partner.content()
    await look(partner, "partner-deals-empty")

    # ... turns the stage notification on (allowed by the organisation) ...
    await partner.get_by_role("link", name="Settings").click()
    assert await partner.get_by_label("A deal of mine is won or lost").count() == 0  # not allowed: not offered
    await partner.get_by_label("A deal of mine moves to another stage").check()
    await partner.get_by_label("A broker adds a note for me").check()
    await partner.get_by_role("button", name="Save notifications").click()
    assert "notification choices are saved" in await partner.locator(".flash").inner_text()
    await look(partner, "partner-settings")

    # ... creates a deal: a missing phone is refused on the field
    await partner.get_by_role("link", name="Deals").click()
    await partner.get_by_role("link", name="Add new").click()
    await look(partner, "partner-deal-new")
    await partner.get_by_label("First name").fill("Chris")
    await partner.get_by_label("Last name").fill("Client " + XSS)
    await partner.get_by_label("E-mail address").fill("chris@client.example")
    await partner.get_by_label("The client agreed to be contacted").check()
    await partner.get_by_role("button", name="Create deal").click()
    field = partner.locator(".field.has-error")
    assert await field.count() == 1
    assert "Enter the phone number" in await field.inner_text()
    assert await partner.get_by_label("Phone number").get_attribute("aria-invalid") == "true"
    assert await partner.get_by_label("First name").input_value() == "Chris"  # kept
    await look(partner, "partner-deal-new-errors")
    await partner.get_by_label("Phone number").fill("+61 400 111 222")
    await partner.get_by_role("button", name="Create deal").click()
    await partner.wait_for_url(re.compile(r".*/partner/deals/deal_\w+$"))
    deal_id = partner.url.rsplit("/", 1)[1]
    assert "is created" in await partner.locator(".flash").inner_text()
    # ... adds a note and a file
    await partner.get_by_label("Add a note for your broker").fill("Chris prefers a call after 5pm.")
    await partner.get_by_role("button", name="Add note").click()
    assert "Your note is added" in await partner.locator(".flash").inner_text()
    pdf = tmp_path / "payslip.pdf"
    pdf.write_bytes(b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n")
    await partner.get_by_label("File", exact=True).set_input_files(pdf)
    await partner.get_by_role("button", name="Upload file").click()
    assert "payslip.pdf is uploaded" in await partner.locator(".flash").inner_text()
    await look(partner, "partner-deal")

    # consent: the same record as a referral's, with the disclosure's hash
    consent = await a.node.db.read(lambda conn: conn.execute(
        "SELECT record FROM partner_consents WHERE deal_id = ?", (deal_id,)).fetchone()[0])
    record = json.loads(consent)
    digest = base64.urlsafe_b64encode(hashlib.sha256(portal.DISCLOSURE_TEXT.encode()).digest()).rstrip(b"=")
    assert record["disclosure_sha256"] == digest.decode() and record["method"] == "electronic"
    assert record["recorded_by"]["email"] == "pat@accountants.example" and len(record["contact_refs"]) == 1
    validate(Consent, record)  # the protocol's own record, as a referral carries it

    # 3. the broker sees the deal as owner, adds a shared and a private note, moves it
    broker = await new_page(browser)
    await choose_password(broker, broker_link)
    await broker.goto(a.url + f"/deals/{deal_id}")
    facts = await broker.locator("dl.facts").inner_text()
    assert "Bea Broker" in facts
    assert "Chris prefers a call after 5pm." in await broker.locator("#notes").inner_text()
    assert "From the partner" in await broker.locator("#notes li").first.inner_text()
    await broker.get_by_label("Add a note").fill("Shared: we will call Chris on Monday.")
    await broker.get_by_label("Share with partner").check()
    await broker.get_by_role("button", name="Add note").click()
    assert "shared with the deal's partners" in await broker.locator(".flash").inner_text()
    await broker.get_by_label("Add a note").fill("Private: credit score borderline.")
    await broker.get_by_role("button", name="Add note").click()
    await broker.get_by_label("Move to stage").select_option(label="Application")
    await broker.get_by_role("button", name="Move", exact=True).click()
    assert "Moved" in await broker.locator(".flash").inner_text()
    await look(broker, "partner-broker-deal")

    # 4. the partner sees the stage move, only the shared note, and gets the e-mail
    await partner.reload()
    current = partner.locator(".stage-bar li[aria-current=step]")
    assert (await current.inner_text()).startswith("Application")
    notes = await partner.locator("#notes").inner_text()
    assert "Shared: we will call Chris on Monday." in notes
    assert "Private" not in notes
    moved = await smtp.wait_for("pat@accountants.example", "moved to Application")
    assert "/partner/deals/" + deal_id in text_of(moved)
    assert "credit score" not in text_of(moved)
    await look(partner, "partner-deal-moved")
    # the shared note was announced (without its text), the private one not at all
    noted = await smtp.wait_for("pat@accountants.example", "New note on")
    assert "Bea Broker" in text_of(noted) and "Monday" not in text_of(noted)
    assert len(await mails_of_kind(a, "partner_note")) == 1

    # 6. "deal shared" on: a broker adds the partner to an existing deal in another
    # workflow, the partner gets the e-mail and a workflow switch
    other = (await a.api("POST", "/api/v1/deals", {"title": "Harbour cover", "workflow_id": insurance["id"],
                                                    "stage_id": insurance["stages"][0]["id"]}, expect=201))["deal"]
    await broker.goto(a.url + f"/deals/{other['id']}")
    await broker.get_by_label("Add a partner to this deal").select_option(label="Pat Partner " + XSS)
    await broker.get_by_role("button", name="Add partner").click()
    assert "and we e-mailed them" in await broker.locator(".flash").inner_text()
    await smtp.wait_for("pat@accountants.example", "shared a deal with you: Harbour cover")
    await partner.goto(a.url + "/partner/")
    await partner.get_by_role("navigation", name="Workflows").get_by_role("link", name="Insurance").click()
    assert "Harbour cover" in await partner.locator(".portal-deals").inner_text()
    await look(partner, "partner-deals-workflow-switch")
    # ... and off: nothing is sent
    await admin.goto(a.url + "/admin/partner-portal")
    await admin.get_by_label("Deal shared").uncheck()
    await admin.get_by_role("button", name="Save settings").click()
    third = (await a.api("POST", "/api/v1/deals", {"title": "Quiet deal", "workflow_id": loans["id"],
                                                    "stage_id": loans["stages"][0]["id"]}, expect=201))["deal"]
    await broker.goto(a.url + f"/deals/{third['id']}")
    await broker.get_by_label("Add a partner to this deal").select_option(label="Pat Partner " + XSS)
    await broker.get_by_role("button", name="Add partner").click()
    flash = await broker.locator(".flash").inner_text()
    assert "can see this deal" in flash and "e-mailed" not in flash
    assert [s for _, s in await mails_of_kind(a, "partner_deal_shared")] == [
        "Acme shared a deal with you: Harbour cover"]
    await partner.goto(a.url + "/partner/")
    assert "Quiet deal" in await partner.locator(".portal-deals").inner_text()

    # the partner signs out and in again, on the portal's own sign-in page
    await partner.get_by_role("button", name="Sign out").click()
    await partner.wait_for_url(re.compile(r".*/partner/login$"))
    await partner.get_by_label("E-mail address").fill("pat@accountants.example")
    await partner.get_by_label("Password").fill("wrong password entirely")
    await partner.get_by_role("button", name="Sign in").click()
    assert "do not match" in await partner.locator(".error-summary").inner_text()
    await look(partner, "partner-login-error")
    await partner.get_by_label("Password").fill(PASSWORD)
    await partner.get_by_role("button", name="Sign in").click()
    await partner.wait_for_url(re.compile(r".*/partner/$"))

    # the partner's settings in dark mode
    await partner.goto(a.url + "/partner/settings")
    await partner.get_by_label("Dark mode").check()
    await partner.get_by_role("button", name="Save details").click()
    assert await partner.locator("html.dark").count() == 1
    await look(partner, "partner-settings-dark")
    await partner.goto(a.url + f"/partner/deals/{deal_id}")
    await look(partner, "partner-deal-dark")
    await partner.goto(a.url + "/partner/")
    await look(partner, "partner-deals-dark")
    await partner.get_by_role("link", name="Add new").click()
    await partner.get_by_role("button", name="Add another client").click()
    assert await partner.get_by_role("group", name="Client 2").count() == 1
    await partner.get_by_role("button", name="Create deal").click()
    assert "Client 2: Enter the first name" in await partner.locator(".error-summary").inner_text()
    await look(partner, "partner-deal-new-two-clients-dark")

    # the partner changes their e-mail address: it changes only once confirmed from the new one
    await partner.goto(a.url + "/partner/settings")
    await partner.get_by_label("New e-mail address").fill("not an address")
    await partner.get_by_role("button", name="Change e-mail address").click()
    assert "Enter an e-mail address" in await partner.locator(".field.has-error").inner_text()
    await look(partner, "partner-settings-errors-dark")
    await partner.get_by_label("New e-mail address").fill("pat@newfirm.example")
    await partner.get_by_role("button", name="Change e-mail address").click()
    assert "We sent a link to pat@newfirm.example" in await partner.locator(".flash").inner_text()
    confirm = link_in(await smtp.wait_for("pat@newfirm.example", "Confirm your new e-mail"),
                      r"https?://\S+/partner/confirm-email/\S+")
    assert "pat@accountants.example" in await partner.locator("main").inner_text()  # not yet
    await partner.goto(confirm)
    assert "Sign in with pat@newfirm.example" in await partner.locator("main").inner_text()  # which address
    await look(partner, "partner-confirm-email")
    await partner.get_by_role("button", name="Use this address").click()
    assert "Your e-mail address is now pat@newfirm.example" in await partner.locator(".flash").inner_text()
    await partner.goto(confirm)
    assert "This link does not work" in await partner.locator("h1").inner_text()  # once only
    assert await partner.get_by_role("button", name="Use this address").count() == 0

    # the admin edits the partner: the new address shows, brokers can change
    await admin.goto(a.url + "/admin/partners")
    await admin.get_by_role("link", name=re.compile("Edit Pat")).click()
    assert "pat@newfirm.example" in await admin.locator("main").inner_text()
    await admin.get_by_label("Phone number").fill("12")
    await admin.get_by_role("button", name="Save changes").click()
    assert "Enter a phone number" in await admin.locator(".error-summary").inner_text()
    await look(admin, "partner-admin-edit-errors")
    await admin.get_by_label("Phone number").fill("+61 400 000 009")
    await admin.get_by_role("button", name="Save changes").click()
    assert "details are saved" in await admin.locator(".flash").inner_text()

    # the admin sees the partner's activity, names and not ids
    await admin.goto(a.url + "/admin/partners")
    await admin.get_by_role("link", name=re.compile("Activity of Pat")).click()
    log = await admin.locator("table").inner_text()
    for what in ("Signed in", "Created a deal", "Added a note", "Uploaded a file", "Confirmed a new e-mail address"):
        assert what in log
    assert "deal_" not in log
    await look(admin, "partner-admin-activity")

    # 5 (end). the unassigned partner never got a mail
    await asyncio.sleep(0.5)
    assert not [m for m in smtp.messages if "quinn@" in str(m["To"])]
    assert dialogs == []


async def test_partner_added_switched_off_sends_no_login_mail(node_factory, browser, smtp) -> None:
    a = await node_factory("Acme", **smtp_settings(smtp))
    await workflow(a, "Home loans", ("Lead", "Settled"))
    await add_broker(a, "Bea Broker", "bea@acme.example")
    admin = await new_page(browser)
    await choose_password(admin, a.extra["password_link"])
    await admin.goto(a.url + "/admin/partner-portal")
    await admin.get_by_label("Partner default workflow").select_option(label="Home loans")
    await admin.get_by_label("Partner added").uncheck()
    await admin.get_by_role("button", name="Save settings").click()
    assert "settings are saved" in await admin.locator(".flash").inner_text()

    # off: a partner assigned to a broker is added, and told of no mail
    await add_partner(admin, a, "Pat Partner", "pat@accountants.example")
    flash = await admin.locator(".flash").inner_text()
    assert "No log-in e-mail was sent: the “partner added” e-mail is turned off" in flash
    assert await mails_of_kind(a, "partner_added") == []
    # on again: the next partner's mail goes out, so the mail that would have gone
    # before it was never sent, not merely late
    await admin.goto(a.url + "/admin/partner-portal")
    await admin.get_by_label("Partner added").check()
    await admin.get_by_role("button", name="Save settings").click()
    await add_partner(admin, a, "Quinn Planner", "quinn@planners.example")
    assert "We e-mailed them a link" in await admin.locator(".flash").inner_text()
    await smtp.wait_for("quinn@planners.example", "partner portal")
    assert [to for to, _ in await mails_of_kind(a, "partner_added")] == ["quinn@planners.example"]
    assert [str(m["To"]) for m in smtp.messages if "pat@" in str(m["To"])] == []


async def add_partner(admin: Any, a: Any, name: str, email: str) -> None:
    """Add a partner assigned to Bea Broker through the admin's form."""
    await admin.goto(a.url + "/admin/partners/new")
    await admin.get_by_label("Name").fill(name)
    await admin.get_by_label("E-mail address").fill(email)
    await admin.get_by_label("Phone number").fill("0400 000 003")
    await admin.get_by_label("Bea Broker").check()
    await admin.get_by_role("button", name="Add partner").click()
