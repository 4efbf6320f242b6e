"""The client portal in a real browser, against a real node, with a real SMTP server and a
local SMS gateway that records what it receives: the issue's must-show flow, steps 1 to 8.
Scoping and documents at rest are in ``test_web_client_portal_guard.py``."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from portal_kit import (
    ACCOUNT,
    SmsGateway,
    client_sign_in,
    deal_with_applicants,
    expected_auth,
    fill_contact_details,
    node_settings,
    passcode_in,
    pdf,
)
from web_kit import check_page, choose_password, new_page, text_of

from protocol.models import parse_ts


@pytest.fixture
async def gateway() -> Any:
    sms = SmsGateway()
    await sms.start()
    try:
        yield sms
    finally:
        await sms.stop()


async def wait_until(predicate: Any, within_s: float = 20.0) -> None:
    for _ in range(int(within_s / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def upload_labelled(page: Any, tmp_path: Path, deal_id: str, base: str, label: str, name: str) -> None:
    await page.goto(f"{base}/deals/{deal_id}")
    (tmp_path / name).write_bytes(pdf(label))
    await page.get_by_label("Label (optional)").fill(label)
    await page.get_by_label("File", exact=True).set_input_files(tmp_path / name)
    await page.get_by_role("button", name="Upload", exact=True).click()
    await page.wait_for_url(re.compile(r".*#documents$"))


async def credits(node: Any) -> int:
    return int(await node.node.db.read(lambda conn: conn.execute(
        "SELECT sms_credits FROM portal_org").fetchone()[0]))


async def invite(page: Any, base: str, deal_id: str, who: str, *, see_others: bool, documents: list[str]) -> None:
    await page.goto(f"{base}/deals/{deal_id}/portal")
    await page.get_by_label("Client", exact=True).select_option(label=who)
    await page.get_by_label("Yes" if see_others else "No", exact=True).check()
    await page.get_by_label("Flow", exact=True).select_option(index=1)
    for d in documents:
        await page.get_by_label(d, exact=True).check()
    await page.get_by_role("button", name="Invite").click()
    await page.wait_for_load_state()


async def test_client_portal_must_show_flow(node_factory, browser, smtp, gateway, tmp_path) -> None:
    a = await node_factory("Summit", **node_settings(tmp_path, smtp, gateway))
    setup = await deal_with_applicants(a)
    deal, ana = setup["deal"], setup["contacts"][0]
    base = a.url
    broker = await new_page(browser)
    await choose_password(broker, a.extra["password_link"])

    # 1. sharing is refused while the deal lacks the labelled documents and the privacy
    #    disclosure is unset; the message says what is missing
    await broker.goto(f"{base}/deals/{deal['id']}")
    assert "Not shared yet." in await broker.locator("#portal").inner_text()
    await broker.get_by_role("link", name="Client portal share").click()
    blockers = await broker.locator(".blockers").inner_text()
    assert "“Credit guide” and a document labelled “Privacy disclosure”" in blockers
    assert "Set your privacy disclosure" in blockers
    await check_page(broker, "portal-deal-blocked")
    # the flow is needed too: make one (three sections), then try to share
    await broker.goto(f"{base}/settings/portal")
    await check_page(broker, "portal-settings")
    await broker.get_by_role("link", name="Add flow").click()
    await broker.get_by_label("Flow type (loan type)").select_option("Purchase")
    await broker.get_by_label("Name", exact=True).fill("First home <script>alert(1)</script>")
    for box in await broker.locator("input[name=sections]").all():
        value = await box.get_attribute("value")
        if value.split(".")[0] not in ("personal", "contact", "goals"):
            await box.uncheck()
    await check_page(broker, "portal-flow-new")
    await broker.get_by_role("button", name="Save flow").click()
    await broker.wait_for_url(re.compile(r".*/settings/portal#flows$"))
    assert "First home <script>alert(1)</script>" in await broker.locator("#flows").inner_text()
    # a flow's videos: YouTube or Vimeo only (a section outside this flow, so the client's
    # pages here load nothing from outside; test_web_client_portal_guard checks the players)
    await broker.get_by_role("link", name="First home <script>alert(1)</script>").click()
    await broker.get_by_label("Employment: video link (optional)").fill("https://videos.evil.example/watch?v=1")
    await broker.get_by_role("button", name="Save flow").click()
    assert "Employment: Enter a YouTube or Vimeo link" in await broker.locator(".error-summary").inner_text()
    await check_page(broker, "portal-flow-edit-error")
    await broker.get_by_label("Employment: video link (optional)").fill("https://youtu.be/dQw4w9WgXcQ")
    await broker.get_by_label("Employment: video description").fill("Your work history")
    await broker.get_by_role("button", name="Save flow").click()
    await broker.wait_for_url(re.compile(r".*/settings/portal#flows$"))
    await invite(broker, base, deal["id"], "Ana Hill", see_others=True, documents=["Photo ID"])
    summary = await broker.locator(".error-summary").inner_text()
    assert "The portal cannot be shared yet." in summary and "“Credit guide”" in summary \
        and "privacy disclosure" in summary, summary
    await check_page(broker, "portal-deal-refused")
    assert gateway.received == [] and smtp.messages == []

    # the disclosure set, the documents labelled: sharing works
    await broker.goto(f"{base}/settings/portal")
    await broker.get_by_label("Privacy disclosure (compulsory)").fill("We keep your details on our own server.")
    await broker.get_by_label("Invitation (with the sign-in passcode)").select_option("both")
    await broker.get_by_role("button", name="Save settings").click()
    await upload_labelled(broker, tmp_path, deal["id"], base, "Credit guide", "credit-guide.pdf")
    await upload_labelled(broker, tmp_path, deal["id"], base, "Privacy disclosure", "privacy.pdf")
    await broker.goto(f"{base}/admin/portal")
    await broker.get_by_label("Credits to add").fill("5")
    await broker.get_by_role("button", name="Top up").click()
    assert "5 left" in await broker.locator(".flash").inner_text()
    await check_page(broker, "portal-admin")

    # 2. the invite sends the e-mail and the SMS, and uses one credit
    await invite(broker, base, deal["id"], "Ana Hill", see_others=True,
                 documents=["Photo ID", "Payslips (last 2)"])
    assert "The portal is shared with Ana Hill." in await broker.locator(".flash").inner_text()
    mail = await smtp.wait_for("ana@example.com", "your client portal")
    assert f"{base}/client/sign-in" in text_of(mail)
    assert "sent your 6-digit passcode to your mobile" in text_of(mail)
    await wait_until(lambda: gateway.to("+61 411 111 111"))
    sms = gateway.to("+61 411 111 111")[0]
    assert sms["account"] == ACCOUNT and sms["auth"] == expected_auth() and sms["From"] == "+61400000001"
    assert sms["content_type"] == "application/x-www-form-urlencoded"
    code = passcode_in(sms["Body"])
    assert await credits(a) == 4
    await broker.goto(f"{base}/deals/{deal['id']}")
    assert "portal shared" in await broker.locator("#contacts").inner_text()
    await check_page(broker, "portal-deal-overview")
    assert "Client portal shared with Ana Hill" in await broker.locator("#notes").inner_text()
    # the passcode is in the database only as an HMAC, and the SMS queue forgot its text
    stored = await a.node.db.read(lambda conn: [list(r) for r in conn.execute(
        "SELECT * FROM client_passcodes")] + [list(r) for r in conn.execute("SELECT body FROM sms_queue")])
    assert code not in repr(stored)

    # 3. the client signs in with the passcode; five wrong tries lock it
    client = await new_page(browser)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        await client_sign_in(client, base, "ana@example.com", wrong)
        assert "not right" in await client.locator(".error-summary").inner_text()
    await check_page(client, "client-sign-in-error")
    await client_sign_in(client, base, "ana@example.com", code)
    assert "locked after 5 wrong tries" in await client.locator(".error-summary").inner_text()
    await client.get_by_role("link", name="Ask for a new passcode", exact=True).click()
    await check_page(client, "client-passcode")
    await client.get_by_label("E-mail address").fill("ana@example.com")
    await client.get_by_role("button", name="Send a new passcode").click()
    await wait_until(lambda: len(gateway.to("+61 411 111 111")) == 2)
    code = passcode_in(gateway.to("+61 411 111 111")[1]["Body"])
    assert await credits(a) == 3
    # asking again at once is refused quietly (rate-limited): no third text
    await client.goto(f"{base}/client/passcode")
    await client.get_by_label("E-mail address").fill("ana@example.com")
    await client.get_by_role("button", name="Send a new passcode").click()
    # a credit is taken when a text is queued, in the request's own transaction: none taken
    # now means none was queued, however slow the sender
    assert await credits(a) == 3
    await check_page(client, "client-sign-in")
    await client_sign_in(client, base, "ana@example.com", code)
    await client.wait_for_url(re.compile(r".*/client/fact-find/personal$"))
    assert len(gateway.to("+61 411 111 111")) == 2

    # 4. a flow of three sections, with a validation error corrected on the way
    await client.get_by_label("First name").fill("Ana")
    await client.get_by_label("Last name").fill("Hill")
    await client.get_by_label("Date of birth", exact=True).fill("31/02/1990")
    await client.get_by_label("Residency status").select_option("Citizen")
    await client.get_by_role("button", name="Save and continue").click()
    assert "Date of birth must be a real date" in await client.locator(".error-summary").inner_text()
    assert "Date of birth must be a real date" in await client.locator("#e-about-date_of_birth").inner_text()
    await check_page(client, "client-fact-find-error")
    await client.get_by_label("Date of birth", exact=True).fill("1990-02-27")
    await client.get_by_label("Name, dependants 1").fill("Cal Hill")
    await client.get_by_label("Date of birth, dependants 1").fill("2019-06-01")
    await client.get_by_role("button", name="Save and continue").click()
    await client.wait_for_url(re.compile(r".*/client/fact-find/contact$"))
    await fill_contact_details(client, "1")
    await client.get_by_role("button", name="Save and continue").click()
    # one year at the current address: the 3-year history needs the previous one
    assert "cover 3 years" in await client.locator(".error-summary").inner_text()
    await check_page(client, "client-fact-find-contact-error")
    await client.get_by_label("Street address, previous addresses 1").fill("9 Hill Rd")
    await client.get_by_label("Suburb or town, previous addresses 1").fill("Parramatta")
    await client.get_by_label("Postcode, previous addresses 1").fill("2150")
    await client.get_by_label("Years there, previous addresses 1").fill("4")
    await client.get_by_role("button", name="Save and continue").click()
    await client.wait_for_url(re.compile(r".*/client/fact-find/goals$"))
    await client.get_by_label("Main goal").select_option("Buy a home to live in")
    await client.get_by_label("Yes").check()
    await client.get_by_label("What may change (optional)").fill("A second child\nnext year")
    await check_page(client, "client-fact-find-goals")
    await client.get_by_role("button", name="Save and continue").click()
    await client.wait_for_url(re.compile(r".*/client/check-answers$"))
    answers = await client.locator("main").inner_text()
    assert "27 Feb 1990" in answers and "Cal Hill" in answers and "9 Hill Rd" in answers
    await check_page(client, "client-check-answers")
    await client.get_by_role("link", name="Change personal details").click()
    await client.get_by_label("Marital status").select_option("Married")
    await client.get_by_role("button", name="Save and continue").click()
    await client.wait_for_url(re.compile(r".*/client/check-answers$"))
    assert "Married" in await client.locator("main").inner_text()
    await client.get_by_role("button", name="Send my answers").click()
    await client.wait_for_url(re.compile(r".*/client/dashboard$"))

    # 5. the client acknowledges the credit guide and uploads two required documents
    dashboard = await client.locator("main").inner_text()
    assert "Lead" in dashboard and "Photo ID" in dashboard and "Payslips (last 2)" in dashboard
    await client.get_by_text("How Summit Admin handles your personal information").click()
    assert await client.get_by_text("We keep your details on our own server.").is_visible()
    await check_page(client, "client-dashboard")
    await client.get_by_role("button", name="I have read the Credit guide").click()
    assert "You acknowledged credit-guide.pdf." in await client.locator(".flash").inner_text()
    # recorded with the time and the SHA-256 of the very document the client read
    ack = await a.node.db.read(lambda conn: conn.execute(
        "SELECT k.sha256, k.at, d.sha256 FROM client_acks k JOIN documents d ON d.id = k.document_id "
        "WHERE k.label = 'Credit guide'").fetchone())
    assert ack[0] == hashlib.sha256(pdf("Credit guide")).hexdigest() == ack[2]
    assert abs((a.node.clock.now() - parse_ts(ack[1])).total_seconds()) < 120, ack[1]
    await client.get_by_label("File for Photo ID").set_input_files(
        {"name": "licence.pdf", "mimeType": "application/pdf", "buffer": pdf("ANA-LICENCE-7731")})
    await client.get_by_role("button", name="Upload Photo ID").click()
    assert "licence.pdf is uploaded for Photo ID." in await client.locator(".flash").inner_text()
    await client.get_by_label("File for Payslips (last 2)").set_input_files(
        {"name": "payslip.txt", "mimeType": "text/plain", "buffer": b"not a pdf, whatever"})
    await client.get_by_label("File for Payslips (last 2)").set_input_files(
        {"name": "payslip.pdf", "mimeType": "application/pdf", "buffer": b"GIF89a pretending"})
    await client.get_by_role("button", name="Upload Payslips (last 2)").click()
    assert "is not a PDF" in await client.locator(".error-summary").inner_text()
    await check_page(client, "client-dashboard-upload-error")
    await client.get_by_label("File for Payslips (last 2)").set_input_files(
        {"name": "payslip.pdf", "mimeType": "application/pdf", "buffer": pdf("ANA-PAYSLIP")})
    await client.get_by_role("button", name="Upload Payslips (last 2)").click()
    assert "payslip.pdf is uploaded" in await client.locator(".flash").inner_text()
    await client.get_by_label("Write to Summit Admin").fill("When do you need the rates notice?")
    await client.get_by_role("button", name="Send message").click()
    await check_page(client, "client-dashboard-done")

    # 6. the broker sees the answers, the acknowledgement and the documents
    await broker.goto(f"{base}/deals/{deal['id']}/portal")
    panel = await broker.locator(f"#client-{await access_id(a, ana['id'])}").inner_text()
    assert "Credit guide (credit-guide.pdf): acknowledged" in panel
    assert "Privacy disclosure" in panel and "Acknowledge: Privacy disclosure" in panel
    assert "licence.pdf" in panel and "payslip.pdf" in panel and "When do you need the rates notice?" in panel
    async with broker.expect_download() as info:
        await broker.get_by_role("link", name="licence.pdf").click()
    saved = await (await info.value).path()
    assert await asyncio.to_thread(Path(saved).read_bytes) == pdf("ANA-LICENCE-7731")
    await broker.get_by_label("Ask Ana Hill for another document").fill("Rates notice")
    await broker.get_by_role("button", name="Ask", exact=True).click()
    await smtp.wait_for("ana@example.com", "asks for a document: Rates notice")
    outstanding = await broker.locator(f"#client-{await access_id(a, ana['id'])} .outstanding").inner_text()
    assert "Upload: Rates notice" in outstanding and "Photo ID" not in outstanding, outstanding
    await broker.get_by_label("Message Ana Hill").fill("By Friday, please.")
    await broker.get_by_role("button", name="Send message").click()
    await smtp.wait_for("ana@example.com", "A message from Summit Admin")
    await check_page(broker, "portal-deal-client")
    await broker.goto(f"{base}/contacts/{ana['id']}")
    answers = await broker.locator("#portal-answers").inner_text()
    assert "Cal Hill" in answers and "27 Feb 1990" in answers and "Married" in answers
    await check_page(broker, "portal-contact-answers")
    await broker.goto(f"{base}/deals/{deal['id']}")
    timeline = await broker.locator("#timeline").inner_text()
    for seen in ("Client uploaded a document", "Client acknowledged a document", "Client submitted their fact find",
                 "Client updated their fact find", "Client signed in", "Client sent a message"):
        assert seen in timeline, seen

    # 7. co-applicant visibility, both ways: Ana (yes) sees Ben's; Ben (no) sees only his own
    await invite(broker, base, deal["id"], "Ben Hill", see_others=False, documents=["Tax return"])
    for details in await broker.locator("details").all():
        await details.locator("summary").click()
    await check_page(broker, "portal-deal-two-clients")
    await wait_until(lambda: gateway.to("+61 422 222 222"))
    ben_page = await new_page(browser)
    await client_sign_in(ben_page, base, "ben@example.com", passcode_in(gateway.to("+61 422 222 222")[0]["Body"]))
    await ben_page.goto(f"{base}/client/dashboard")
    ben_sees = await ben_page.locator("main").inner_text()
    assert "Tax return" in ben_sees and "Photo ID" not in ben_sees and "Ana" not in ben_sees
    await client.goto(f"{base}/client/dashboard")
    ana_sees = await client.locator("main").inner_text()
    assert "Tax return" in ana_sees and "for Ben Hill" in ana_sees
    await client.get_by_label("File for Tax return (Ben Hill)").set_input_files(
        {"name": "ben-tax.pdf", "mimeType": "application/pdf", "buffer": pdf("BEN-TAX")})
    await client.get_by_role("button", name="Upload Tax return").click()
    assert "ben-tax.pdf is uploaded for Tax return." in await client.locator(".flash").inner_text()
    await client.get_by_role("link", name="Ben Hill").click()
    await check_page(client, "client-applicant")
    await ben_page.goto(f"{base}/client/dashboard")
    assert "ben-tax.pdf" in await ben_page.locator("main").inner_text()
    ana_access = await access_id(a, ana["id"])
    gone = await ben_page.goto(f"{base}/client/applicants/{ana_access}")
    assert gone is not None and gone.status == 404
    licence = await a.node.db.read(lambda conn: conn.execute(
        "SELECT id FROM client_files WHERE name = 'licence.pdf'").fetchone()[0])
    gone = await ben_page.goto(f"{base}/client/files/{licence}")
    assert gone is not None and gone.status == 404
    # the same words as for a file that does not exist: nothing says Ana's is there
    assert "There is no such file in your portal." in await ben_page.locator("main").inner_text()
    await check_page(ben_page, "client-not-found")

    # 8. a revoke ends a live client session on its next request, and leaves the note
    await client.goto(f"{base}/client/dashboard")
    await broker.goto(f"{base}/deals/{deal['id']}/portal")
    await broker.get_by_role("link", name="Revoke Ana Hill’s access").click()
    await check_page(broker, "portal-revoke")
    await broker.get_by_role("button", name="Revoke").click()
    assert "Ana Hill no longer has access" in await broker.locator(".flash").inner_text()
    await client.get_by_label("Write to Summit Admin").fill("Are you there?")
    await client.get_by_role("button", name="Send message").click()
    assert "Your session has ended" in await client.locator("main").inner_text()
    await check_page(client, "client-session-ended")
    stored = await a.node.db.read(lambda conn: [r[0] for r in conn.execute("SELECT body FROM client_messages")])
    assert "When do you need the rates notice?" in stored and "Are you there?" not in stored
    await client.goto(f"{base}/client/dashboard")
    assert "/client/sign-in" in client.url
    await broker.goto(f"{base}/deals/{deal['id']}")
    assert "Client portal access revoked for Ana Hill." in await broker.locator("#notes").inner_text()
    # Ben keeps his access
    await ben_page.goto(f"{base}/client/dashboard")
    assert "/client/dashboard" in ben_page.url


async def access_id(node: Any, contact_id: str) -> str:
    return str(await node.node.db.read(lambda conn: conn.execute(
        "SELECT id FROM client_access WHERE contact_id = ? ORDER BY invited_at DESC", (contact_id,)).fetchone()[0]))
