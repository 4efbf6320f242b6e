"""The admin pages through a real browser, real nodes and a real SMTP server: users
(added with a mailed or a shown-once link, deactivated, reset, kept out of admin pages),
API tokens (shown once, working, revoked), e-mail settings (SMTP and .eml files), the
outbox (retry, receipts, key rotation) and the mail the admins get when a delivery has
been failing for over an hour."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from playwright.async_api import Page
from web_kit import check_page, choose_password, link_in, new_page, sign_in, smtp_settings

from node.base.clock import FakeClock

ADMIN_PAGES = ["/admin", "/admin/users", "/admin/users/new", "/admin/tokens", "/admin/outbox", "/admin/keys/rotate",
               "/admin/mail"]
ADMIN_POSTS = ["/admin/users", "/admin/users/usr_x/deactivate", "/admin/users/usr_x/reactivate",
               "/admin/users/usr_x/reset", "/admin/users/usr_x/unlock", "/admin/tokens", "/admin/tokens/tok_x/revoke",
               "/admin/outbox/1/retry", "/admin/outbox/receipts", "/admin/keys/rotate", "/admin/mail/test"]
XSS = "<script>alert(1)</script>"
RunningNode = Any  # tests/conftest.py's, which this folder's conftest.py hides


async def wait_for(predicate: Callable[[], Awaitable[bool]], *, within_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def admin_page(browser: Any, node: RunningNode) -> Page:
    """A browser page signed in as the node's first admin."""
    page = await new_page(browser)
    await choose_password(page, node.extra["password_link"])
    return page


async def flash(page: Page) -> str:
    return await page.get_by_role("status").first.inner_text()


async def test_admin_adds_a_broker_by_mail_and_the_broker_is_kept_out_of_admin(node_factory, browser, smtp) -> None:
    a = await node_factory("Acme", **smtp_settings(smtp))
    page = await admin_page(browser, a)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin", exact=True).click()
    await page.wait_for_url(re.compile(r".*/admin$"))
    info = await a.api("GET", "/api/v1/node")
    assert info["fingerprint"] in await page.content() and info["node_id"] in await page.content()
    await check_page(page, "admin")
    await page.get_by_role("navigation", name="Admin sections").get_by_role("link", name="Users").click()
    await page.get_by_role("link", name="Add a user").click()
    # the form refuses what it cannot use, field by field
    await page.get_by_label("Name").fill("")
    await page.get_by_role("button", name="Add the user").click()
    summary = page.get_by_role("alert")
    assert "Enter the person's name" in await summary.inner_text()
    assert "Enter an e-mail address" in await summary.inner_text()
    await check_page(page, "admin-user-new-errors")
    await page.get_by_label("Name").fill("Bo Broker")
    await page.get_by_label("E-mail address").fill("bo@acme.example")
    assert await page.get_by_label("Send them the link to set their password by e-mail").is_checked()
    await page.get_by_role("button", name="Add the user").click()
    await page.wait_for_url(re.compile(r".*/admin/users$"))
    assert "Bo Broker is added. We e-mailed them" in await flash(page)
    assert "rnp_" not in await page.content()  # the link went by mail only
    await check_page(page, "admin-users")
    # the same address again is refused beside the field
    await page.goto(a.url + "/admin/users/new")
    await check_page(page, "admin-user-new")
    await page.get_by_label("Name").fill("Bo Again")
    await page.get_by_label("E-mail address").fill("BO@acme.example")
    await page.get_by_role("button", name="Add the user").click()
    assert "There is already a user with this e-mail address" in await page.get_by_role("alert").inner_text()

    # the broker gets the mail, sets a password and signs in
    mail = await smtp.wait_for("bo@acme.example", "Set your password")
    broker = await new_page(browser)
    await choose_password(broker, link_in(mail, r"http://\S+/set-password/\S+"))
    assert await broker.get_by_role("navigation", name="Main").get_by_role("link", name="Admin", exact=True).count() == 0
    for path in ADMIN_PAGES:
        response = await broker.goto(a.url + path)
        assert response is not None and response.status == 403, path
        assert "forbidden" in await broker.content()
    await check_page(broker, "admin-forbidden")
    for path in ADMIN_POSTS:  # refused before the form is even read
        response = await broker.request.post(a.url + path, form={"csrf": "x"})
        assert response.status == 403 and "forbidden" in await response.text(), path

    # a reset link by mail
    await page.goto(a.url + "/admin/users")
    await page.get_by_role("button", name="Send a reset link to Bo Broker").click()
    assert "We e-mailed Bo Broker a link" in await flash(page)
    await smtp.wait_for("bo@acme.example", "Reset your password")

    # deactivated: the broker's session ends at their next request, and stays ended
    await page.get_by_role("button", name="Deactivate Bo Broker").click()
    assert "Bo Broker is deactivated" in await flash(page)
    await broker.goto(a.url + "/settings")
    assert "/login" in broker.url
    await page.get_by_role("button", name="Reactivate Bo Broker").click()
    assert "Bo Broker is active again" in await flash(page)
    await broker.goto(a.url + "/settings")
    assert "/login" in broker.url  # reactivating does not bring the old session back
    await sign_in(broker, a.url, "bo@acme.example")

    # a workflow's owner cannot be deactivated: the page says why, with names
    users = (await a.api("GET", "/api/v1/users"))["users"]
    bo = next(u for u in users if u["email"] == "bo@acme.example")
    await a.api("POST", "/api/v1/workflows", {"name": "Home loans", "owner_user_id": bo["id"],
                                              "stage_names": ["New", "Settled"]})
    await page.get_by_role("button", name="Deactivate Bo Broker").click()
    problem = await page.get_by_role("alert").inner_text()
    assert "Bo Broker owns the workflow Home loans" in problem and "usr_" not in problem
    assert "/admin/users/" in page.url  # answered in place, nothing changed
    assert next(u for u in (await a.api("GET", "/api/v1/users"))["users"] if u["id"] == bo["id"])["active"]
    await check_page(page, "admin-users-problem")

    # unknown and malformed ids: a clear error page with a stable code, never a 500
    for path in ("/admin/users/usr_nobody/deactivate", "/admin/tokens/nope/revoke", "/admin/outbox/99999/retry"):
        response = await page.request.post(a.url + path, form={"csrf": await csrf_of(page)})
        assert response.status in (400, 404), (path, response.status)
        assert "Error code" in await response.text()
    response = await page.request.post(a.url + "/admin/outbox/99999999999999999999/retry",
                                       form={"csrf": await csrf_of(page)})
    assert response.status == 404


async def csrf_of(page: Page) -> str:
    return await page.locator("input[name=csrf]").first.get_attribute("value") or ""


async def test_a_link_not_mailed_is_shown_once_and_names_are_text(node_factory, browser) -> None:
    a = await node_factory("Acme")
    page = await admin_page(browser, a)
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    await page.goto(a.url + "/admin/users/new")
    await page.get_by_label("Name").fill(XSS)
    await page.get_by_label("E-mail address").fill("odd@acme.example")
    await page.get_by_label("Send them the link to set their password by e-mail").uncheck()
    await page.get_by_role("button", name="Add the user").click()
    assert await page.get_by_role("heading", level=1).inner_text() == f"{XSS} is added"
    link = await page.get_by_label(f"Set-password link for {XSS}").input_value()
    assert link.startswith(a.url + "/set-password/rnp_")
    assert await page.get_by_role("button", name="Copy").is_visible()
    await check_page(page, "admin-user-added")
    await page.goto(a.url + "/admin/users")
    assert link not in await page.content()  # only that once
    assert await page.get_by_role("row", name=XSS).count() == 1
    assert await page.get_by_role("button", name=f"Deactivate {XSS}").count() == 1
    queued = await a.node.db.read(lambda c: c.execute(
        "SELECT count(*) FROM mail_queue WHERE to_addr = 'odd@acme.example'").fetchone()[0])
    assert queued == 0  # not mailed, as asked
    # a token for them shows their name as text too
    await page.goto(a.url + "/admin/tokens")
    await page.get_by_label("Label").fill(XSS)
    await page.get_by_label("User").select_option(label=f"{XSS} (odd@acme.example)")
    await page.get_by_role("button", name="Create the token").click()
    await page.goto(a.url + "/admin/tokens")
    assert await page.get_by_role("button", name=f"Revoke the token {XSS} of {XSS}").count() == 1
    # the link works, once, for the person it was given to
    other = await new_page(browser)
    await choose_password(other, link)
    assert XSS in await other.get_by_role("heading", level=1).inner_text()
    assert not dialogs  # no script ran


async def test_tokens_are_shown_once_work_and_stop_when_revoked(node_factory, browser) -> None:
    a = await node_factory("Acme")
    page = await admin_page(browser, a)
    await page.goto(a.url + "/admin")
    await page.get_by_role("navigation", name="Admin sections").get_by_role("link", name="API tokens").click()
    await page.get_by_role("button", name="Create the token").click()
    assert "Enter a label" in await page.get_by_role("alert").inner_text()
    await page.get_by_label("Label").fill("Nightly export")
    await page.get_by_role("button", name="Create the token").click()
    token = await page.get_by_label("API token").input_value()
    assert token.startswith("rnt_")
    await check_page(page, "admin-token-created")
    info = await a.api("GET", "/api/v1/node", token=token, expect=200)
    assert info["name"] == "Acme"
    await page.goto(a.url + "/admin/tokens")
    assert token not in await page.content()
    row = page.get_by_role("row", name=re.compile("Nightly export"))
    assert "Acme Admin" in await row.inner_text()
    assert "Never" not in await row.inner_text()  # its use is recorded
    await check_page(page, "admin-tokens")
    await page.get_by_role("button", name="Revoke the token Nightly export of Acme Admin").click()
    assert "The token “Nightly export” is revoked" in await flash(page)
    body = await a.api("GET", "/api/v1/node", token=token, expect=401)
    assert body["error"]["code"] == "unauthenticated"
    assert "Revoked" in await page.get_by_role("row", name=re.compile("Nightly export")).inner_text()
    # the admin's own token still works
    await a.api("GET", "/api/v1/node", expect=200)


async def test_mail_settings_and_a_test_mail_over_smtp(node_factory, browser, smtp, tmp_path) -> None:
    a = await node_factory("Acme", **smtp_settings(smtp))
    page = await admin_page(browser, a)
    await page.goto(a.url + "/admin")
    assert "written as .eml files" not in await page.content()
    await page.get_by_role("navigation", name="Admin sections").get_by_role("link", name="E-mail").click()
    text = await page.locator("main").inner_text()
    assert f"{smtp.host}, port {smtp.port}" in text and "None (plain text)" in text
    await check_page(page, "admin-mail-smtp")
    await page.get_by_role("button", name="Send a test e-mail").click()
    assert "A test e-mail to admin@acme.example is on its way" in await flash(page)
    mail = await smtp.wait_for("admin@acme.example", "Test e-mail from Acme")
    assert "by Acme Admin" in str(mail.get_body(preferencelist=("plain",)).get_content())

    async def sent() -> bool:
        await page.goto(a.url + "/admin/mail")
        return "Sent in the last 24 hours\n1" in await page.locator("main").inner_text()

    await wait_for(sent)
    # a password is never shown, only where it comes from and whether it is there
    secret = tmp_path / "smtp-password"
    secret.write_text("hunter2-very-secret")
    secret.chmod(0o600)
    b = await node_factory("Bravo", smtp_host="mail.bravo.example", smtp_user="mailer",
                           smtp_password_file=str(secret))
    other = await admin_page(browser, b)
    await other.goto(b.url + "/admin/mail")
    text = await other.locator("main").inner_text()
    assert "hunter2" not in await other.content()
    assert f"Set, from the file {secret}" in text and "mailer" in text and "STARTTLS" in text


async def test_without_smtp_mail_is_an_eml_file_and_the_pages_say_so(node_factory, browser) -> None:
    a = await node_factory("Acme")
    page = await admin_page(browser, a)
    await page.goto(a.url + "/admin")
    notice = await page.locator(".notice").inner_text()
    assert "No SMTP server is set" in notice and str(a.config.mail_dir) in notice
    await page.goto(a.url + "/admin/mail")
    assert f"to the folder {a.config.mail_dir}" in await page.locator("main").inner_text()
    await check_page(page, "admin-mail-eml")
    await page.get_by_role("button", name="Send a test e-mail").click()
    assert "written as an .eml file" in await flash(page)

    def eml() -> list[str]:
        return [f for f in os.listdir(a.config.mail_dir) if f.endswith(".eml")] if a.config.mail_dir.exists() else []

    async def written() -> bool:
        return any("Test e-mail from Acme" in (a.config.mail_dir / f).read_text() for f in eml())

    await wait_for(written)
    found = next(f for f in eml() if "Test e-mail" in (a.config.mail_dir / f).read_text())
    assert (a.config.mail_dir / found).stat().st_mode & 0o777 == 0o600


# --- two nodes: the outbox and failing deliveries --------------------------------------------


async def connect(a: RunningNode, b: RunningNode) -> str:
    """b invites a; a connects with the URL and key; both see the connection active."""
    invite = await b.api("POST", "/api/v1/invitations", {"name": a.name, "direction": "receive"})
    result = await a.api("POST", "/api/v1/connections",
                         {"referral_url": invite["referral_url"], "referral_key": invite["referral_key"]})
    cid = result["connection"]["id"]

    async def active() -> bool:
        ours = (await a.api("GET", "/api/v1/connections"))["connections"]
        theirs = (await b.api("GET", "/api/v1/connections"))["connections"]
        return any(c["id"] == cid and c["state"] == "active" for c in ours) and any(
            c["id"] == cid and c["state"] == "active" for c in theirs)

    await wait_for(active)
    return cid


CONSENT = {
    "contact_refs": ["c1"],
    "consented_at": "2026-11-20T10:00:00Z",
    "method": "verbal",
    "disclosure_version": "privacy-2026-07",
    "disclosure_sha256": "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg",
    "recorded_by": {"name": "Ava Agent", "email": "ava@agency.example"},
}


def referral(cid: str, title: str, agent: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "connection_id": cid, "referral_type": "mortgage",
        "deal": {"title": title, "amount": "650000.00", "currency": "AUD"},
        "contacts": [{"ref": "c1", "first_name": "Jo", "last_name": "Citizen", "email": "jo@example.com"}],
        "shared_fields": ["deal.title", "deal.amount", "contacts.first_name", "contacts.last_name",
                          "contacts.email"],
        "referring_agent": agent or {"name": "Ava Agent", "email": "ava@agency.example"},
        "message": "", "consent": CONSENT,
    }


async def outbox_attempts(node: RunningNode) -> int:
    items = (await node.api("GET", "/api/v1/outbox?state=pending"))["outbox"]
    return sum(i["attempts"] for i in items)


async def test_failing_delivery_mails_the_admins_once_per_episode(node_factory, browser, smtp) -> None:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    a = await node_factory("Agency", start=False, session_idle_s=86400, session_absolute_s=86400 * 2,
                           **smtp_settings(smtp))
    b = await node_factory("Broker", start=False)
    await a.start(clock=clock)
    await b.start(clock=clock)
    cid = await connect(a, b)
    await b.stop()  # the broker's node is down
    await a.api("POST", "/api/v1/referrals", referral(cid, "Purchase at 1 Quay St"), expect=202)

    async def attempted(more_than: int) -> bool:
        return await outbox_attempts(a) > more_than

    await wait_for(lambda: attempted(0))
    clock.advance(1800)  # half an hour: no mail yet
    await wait_for(lambda: attempted(1))
    await asyncio.sleep(1.0)
    assert not [m for m in smtp.messages if "failing" in str(m["Subject"])]
    clock.advance(1900)  # over the hour
    mail = await smtp.wait_for("admin@agency.example", "Deliveries to Broker are failing")
    text = str(mail.get_body(preferencelist=("plain",)).get_content())
    assert "/admin/outbox" in text and "1 message waits" in text and "could not be reached" in text
    assert "Quay St" not in text and "Citizen" not in text  # no client data in an alert
    for _ in range(3):  # more retries, no more mail
        count = await outbox_attempts(a)
        clock.advance(600)
        await wait_for(lambda count=count: attempted(count))
    await asyncio.sleep(1.0)
    failing_mails = [m for m in smtp.messages if "failing" in str(m["Subject"])]
    assert len(failing_mails) == 1

    # the admin sees it on the outbox page
    page = await admin_page(browser, a)
    await page.goto(a.url + "/admin/outbox")
    row = await page.get_by_role("row", name=re.compile("Broker")).inner_text()
    assert "Failing" in row and "Admins e-mailed" in row and "could not be reached" in row
    assert "Error" not in row and "Still trying" in row  # words, not an exception's class name
    await check_page(page, "admin-outbox-failing")

    # it recovers: the episode ends; when it fails again for an hour, a second mail
    await b.start(clock=clock)
    clock.advance(10)

    async def delivered() -> bool:
        return not (await a.api("GET", "/api/v1/outbox?state=pending"))["outbox"]

    await wait_for(delivered)
    await b.stop()
    await a.api("POST", "/api/v1/referrals", referral(cid, "Purchase at 2 Quay St"), expect=202)
    await wait_for(lambda: attempted(0))
    clock.advance(3700)

    async def two_mails() -> bool:
        return len([m for m in smtp.messages if "failing" in str(m["Subject"])]) == 2

    await wait_for(two_mails)


async def test_outbox_retry_receipts_and_key_rotation(node_factory, browser) -> None:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    a = await node_factory("Agency", start=False, delivery_deadline_s=600, session_idle_s=86400,
                           session_absolute_s=86400 * 2)
    b = await node_factory("Broker", start=False)
    await a.start(clock=clock)
    await b.start(clock=clock)
    cid = await connect(a, b)
    page = await admin_page(browser, a)
    await page.goto(a.url + "/admin/outbox")
    assert "No delivery has failed" in await page.content()
    await check_page(page, "admin-outbox")
    await b.stop()
    sent = await a.api("POST", "/api/v1/referrals", referral(cid, "Purchase at 3 Quay St"), expect=202)
    await wait_for(lambda: _attempted(a))
    clock.advance(700)  # past the delivery deadline: the item fails

    async def failed() -> bool:
        return bool((await a.api("GET", "/api/v1/outbox?state=failed"))["outbox"])

    await wait_for(failed)
    await b.start(clock=clock)
    await page.goto(a.url + "/admin/outbox")
    retry = page.get_by_role("button", name="Retry the referral Purchase at 3 Quay St (mortgage) to Broker")
    health = await page.get_by_role("row", name=re.compile("^Broker")).inner_text()
    assert "Failed" in health and "Given up" in health and "Failing since" not in health, health
    why = await page.locator("section[aria-labelledby='h-failed'] tbody").inner_text()
    assert "could not be reached: could not connect to its address" in why and "Error" not in why, why
    await check_page(page, "admin-outbox-failed")
    await retry.click()
    assert "The delivery is queued again for Broker" in await flash(page)

    async def delivered() -> bool:
        r = await a.api("GET", f"/api/v1/referrals/{sent['referral']['local_id']}")
        return r["referral"]["state"] == "delivered"

    await wait_for(delivered)
    # retrying it again is refused with a clear error, not a 500
    response = await page.request.post(a.url + "/admin/outbox/1/retry", form={"csrf": await csrf_of(page)})
    assert response.status == 409 and "invalid_transition" in await response.text()

    await page.goto(a.url + "/admin/outbox")
    await page.get_by_role("button", name="Re-verify every receipt").click()
    result = await page.get_by_role("status").inner_text()
    delivered_count = len((await a.api("GET", "/api/v1/outbox?state=delivered"))["outbox"])
    assert f"{delivered_count} receipts checked: {delivered_count} verify, 0 do not" in result
    await check_page(page, "admin-outbox-receipts")

    await page.get_by_role("link", name="Rotate the signing key…").click()
    assert "Every connected organisation (Broker) is told" in await page.content()
    await check_page(page, "admin-rotate")
    before = (await a.api("GET", "/api/v1/node"))
    await page.get_by_role("button", name="Rotate the signing key").click()
    assert "1 connected organisation is being told" in await flash(page)
    assert "1 earlier key retired" in await page.content()
    assert (await a.api("GET", "/api/v1/node"))["fingerprint"] == before["fingerprint"]

    async def rotation_delivered() -> bool:
        items = (await a.api("GET", "/api/v1/outbox?state=delivered"))["outbox"]
        return any(i["type"].startswith("key-rotation/") for i in items)

    await wait_for(rotation_delivered)
    # a referral signed with the new key still goes through
    later = await a.api("POST", "/api/v1/referrals", referral(cid, "Purchase at 4 Quay St"), expect=202)

    async def later_delivered() -> bool:
        r = await a.api("GET", f"/api/v1/referrals/{later['referral']['local_id']}")
        return r["referral"]["state"] == "delivered"

    await wait_for(later_delivered)


async def _attempted(node: RunningNode) -> bool:
    return await outbox_attempts(node) > 0


async def test_a_post_without_csrf_changes_nothing(node_factory, browser) -> None:
    a = await node_factory("Acme")
    page = await admin_page(browser, a)
    response = await page.request.post(a.url + "/admin/users", form={"name": "Eve", "email": "eve@acme.example",
                                                                     "role": "admin"})
    assert response.status == 403 and "csrf_failed" in await response.text()
    assert all(u["email"] != "eve@acme.example" for u in (await a.api("GET", "/api/v1/users"))["users"])
    async with aiohttp.ClientSession() as http:  # no session at all: the page asks to sign in
        async with http.get(a.url + "/admin/users", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/login")
