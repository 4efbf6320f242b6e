"""The Connections pages with two real nodes, a real browser and a real SMTP server:
invite by e-mail and connect with the URL and key after comparing fingerprints; ask a
user at the other node to connect (their mail's link opens the request after sign-in);
decline with a message the requester sees; settings, delivery health and disconnecting
on a connection's page; what brokers may see and do; names shown as text, never markup;
and bad ids or forms answered with an error page, never a 500."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from playwright.async_api import Page
from test_web_deals import look
from web_kit import (
    PASSWORD,
    choose_password,
    link_in,
    new_page,
    smtp_settings,
    text_of,
)

from node.mail.queue import WIPED
from protocol.keys import fingerprint_of

EVIL = "<script>alert(1)</script>"
#: A node started by ``node_factory`` (tests/conftest.py's RunningNode: the name
#: ``conftest`` here is tests/web's).
RunningNode = Any


async def wait_for(predicate: Callable[[], Awaitable[bool]], within_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


# --- helpers ----------------------------------------------------------------------------


async def admin_page(browser: Any, node: RunningNode, *, phone: bool = False) -> Page:
    """A browser page where the node's first admin has chosen a password (and is signed in)."""
    page = await new_page(browser, phone=phone)
    await choose_password(page, node.extra["password_link"])
    return page


async def add_user(node: RunningNode, email: str, name: str, role: str = "broker") -> dict[str, Any]:
    return await node.api("POST", "/api/v1/users", {"email": email, "name": name, "role": role}, expect=201)


async def user_page(browser: Any, node: RunningNode, email: str, name: str, role: str = "broker") -> Page:
    created = await add_user(node, email, name, role)
    page = await new_page(browser)
    await choose_password(page, created["password_link"])
    return page


async def workflow(node: RunningNode, name: str, stages: list[str]) -> dict[str, Any]:
    admin = next(u for u in (await node.api("GET", "/api/v1/users"))["users"] if u["role"] == "admin")
    body = {"name": name, "owner_user_id": admin["id"], "stage_names": stages}
    return (await node.api("POST", "/api/v1/workflows", body, expect=201))["workflow"]


async def connection(node: RunningNode, cid: str) -> dict[str, Any]:
    return (await node.api("GET", f"/api/v1/connections/{cid}"))["connection"]


async def states(a: RunningNode, b: RunningNode, cid: str, want: str) -> None:
    async def both() -> bool:
        conns = [(await n.api("GET", "/api/v1/connections"))["connections"] for n in (a, b)]
        return all(any(c["id"] == cid and c["state"] == want for c in cs) for cs in conns)

    await wait_for(both)


async def connect_by_api(inviter: RunningNode, joiner: RunningNode, direction: str = "both") -> str:
    invite = await inviter.api("POST", "/api/v1/invitations", {"name": joiner.config.org_name, "direction": direction})
    result = await joiner.api("POST", "/api/v1/connections",
                              {"referral_url": invite["referral_url"], "referral_key": invite["referral_key"]})
    cid = result["connection"]["id"]
    await states(inviter, joiner, cid, "active")
    return cid


async def request_by_api(asker: RunningNode, asked: RunningNode, email: str, message: str = "") -> str:
    body = {"url": asked.url, "email": email, "direction": "send", "message": message}
    cid = (await asker.api("POST", "/api/v1/connections", body, expect=202))["connection"]["id"]

    async def arrived() -> bool:
        return any(c["id"] == cid for c in (await asked.api("GET", "/api/v1/connections"))["connections"])

    await wait_for(arrived)
    return cid


def invitation_mails(conn: Any) -> int:
    return int(conn.execute("SELECT count(*) FROM mail_queue WHERE kind = 'invitation'").fetchone()[0])


async def fingerprint(node: RunningNode) -> str:
    return (await node.api("GET", "/api/v1/node"))["fingerprint"]


async def flash(page: Page) -> str:
    return await page.locator(".flash").inner_text()


class Http:
    """A signed-in session over raw HTTP, for what a browser would not send. Pages come
    back as text with HTML's character references replaced."""

    def __init__(self, node: RunningNode, session: aiohttp.ClientSession) -> None:
        self.node, self.session = node, session

    @classmethod
    async def sign_in(cls, node: RunningNode, email: str) -> Http:
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        http = cls(node, session)
        token = await http.csrf("/login")
        async with session.post(node.url + "/login", data={"csrf": token, "email": email, "password": PASSWORD},
                                allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
        return http

    async def csrf(self, path: str = "/settings") -> str:
        async with self.session.get(self.node.url + path) as resp:
            found = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
            assert found
            return found.group(1)

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.node.url + path, headers={"Accept": "text/html"},
                                    allow_redirects=False) as resp:
            return resp.status, html.unescape(await resp.text())

    async def post(self, path: str, data: dict[str, str] | None = None) -> tuple[int, str]:
        form = {"csrf": await self.csrf(), **(data or {})}
        async with self.session.post(self.node.url + path, data=form, allow_redirects=False) as resp:
            return resp.status, html.unescape(await resp.text())

    async def close(self) -> None:
        await self.session.close()


# --- invite by e-mail; connect with the URL and key -------------------------------------


async def test_invite_by_mail_then_connect_with_url_and_key_after_comparing_fingerprints(
        node_factory, browser, smtp) -> None:
    a = await node_factory("Acme", **smtp_settings(smtp))
    b = await node_factory("Harbour", **smtp_settings(smtp))
    await workflow(a, "Mortgages", ["Enquiry", "Application", "Settled"])
    await workflow(a, "Insurance", ["Quote", "Bound"])
    await add_user(a, "ann@acme.example", "Ann Adviser")
    page = await admin_page(browser, a)
    await page.get_by_role("link", name="Connections").click()
    assert await page.get_by_role("heading", level=1).inner_text() == "Connections"
    assert "No connection yet" in await page.content()
    await look(page, "connections-empty")

    # the form, sent wrong: errors at the top and beside the fields, nothing made
    await page.get_by_role("link", name="Invite an organisation").click()
    await look(page, "connections-invite")
    await page.get_by_label("Workflow", exact=True).select_option(label="Insurance")
    # with JavaScript, the stage list offers the chosen workflow's stages only
    assert await page.locator('#f-stage_id optgroup[label="Mortgages"]').evaluate("g => g.disabled")
    await page.get_by_label("Stage", exact=True).select_option(label="Bound")
    await page.get_by_role("button", name="Make the invitation").click()
    summary = page.locator(".error-summary")
    assert "Enter the name of the organisation you invite." in await summary.inner_text()
    assert await page.get_by_label("Stage", exact=True).locator("option:checked").inner_text() == "Bound"
    await look(page, "connections-invite-errors")
    assert (await a.api("GET", "/api/v1/invitations"))["invitations"] == []
    await page.get_by_label("Organisation's name").fill("Harbour Realty")

    await page.get_by_label("Workflow", exact=True).select_option(label="Mortgages")
    await page.get_by_label("Stage", exact=True).select_option(label="Application")
    await page.get_by_label("Folder").fill("Harbour")
    await page.get_by_label("Source").fill("Harbour Realty partnership")
    await page.get_by_role("radio", name="Always the same person").check()
    await page.locator("#f-user_id").select_option(label="Ann Adviser (ann@acme.example)")
    await page.get_by_role("button", name="Make the invitation").click()
    assert await page.get_by_role("heading", level=1).inner_text() == "Invitation for Harbour Realty"
    url = await page.get_by_label("Referral URL").input_value()
    key = await page.get_by_label("Referral key").input_value()
    assert url.startswith(a.url + "/refnode/v1/invitations/inv_") and key.startswith("rnk1_")
    fp_a = await fingerprint(a)
    assert fp_a in await page.content()
    await look(page, "connections-invited")

    # Send by e-mail: a wrong address is shown again with the URL and key; then it goes
    await page.get_by_label("Their admin's name").fill("Hana Harbour")
    await page.get_by_label("Their admin's e-mail address").fill("not an address")
    await page.get_by_role("button", name="Send by e-mail").click()
    assert "must be an email address" in await page.locator(".error-summary").inner_text()
    assert await page.get_by_label("Referral key").input_value() == key
    await page.get_by_label("Their admin's e-mail address").fill(b.extra["admin_email"])
    await page.get_by_role("button", name="Send by e-mail").click()
    assert "on its way to Hana Harbour" in await flash(page)
    assert "Harbour Realty" in await page.locator("#h-invitations + .table-wrap").inner_text()
    await look(page, "connections-invitation-open")

    mail = await smtp.wait_for(b.extra["admin_email"], "Acme invites you")
    text = text_of(mail)
    assert url in text and key in text and fp_a in text and "Hello Hana Harbour" in text
    assert "Connect with a URL and key" in text
    # the key is kept nowhere in clear: the invitation keeps its hash, the sent mail is wiped
    secret = key.removeprefix("rnk1_")

    def stored(conn: Any) -> list[Any]:
        mails = conn.execute("SELECT text_body, html_body FROM mail_queue WHERE kind = 'invitation'").fetchall()
        invitations = conn.execute("SELECT * FROM invitations").fetchall()
        return [tuple(r) for r in mails + invitations]

    async def wiped() -> bool:
        return (await a.node.db.read(stored))[0] == (WIPED, WIPED)

    await wait_for(wiped)
    assert not any(secret in str(value) for row in await a.node.db.read(stored) for value in row)

    # B's admin pastes what the mail says, and sees A's name and fingerprint to compare
    page_b = await admin_page(browser, b)
    await page_b.goto(b.url + "/connections")
    await page_b.get_by_role("link", name="Connect with a URL and key").click()
    await look(page_b, "connections-connect")
    await page_b.get_by_label("Referral URL").fill(link_in(mail, r"http://\S+/refnode/v1/invitations/\S+"))
    await page_b.get_by_label("Referral key").fill(key[:-3])  # damaged
    await page_b.get_by_role("button", name="Continue").click()
    assert "The referral key is damaged" in await page_b.locator(".error-summary").inner_text()
    await page_b.get_by_label("Referral key").fill(re.search(r"rnk1_\S+", text).group(0))
    await page_b.get_by_role("button", name="Continue").click()
    assert await page_b.get_by_role("heading", level=1).inner_text() == "Is this Acme?"
    theirs = page_b.locator("section", has=page_b.get_by_role("heading", name="Their node"))
    assert fp_a in await theirs.inner_text()
    assert await fingerprint(b) in await page_b.locator("section", has_text="Our node").inner_text()
    await look(page_b, "connections-confirm-key")
    await page_b.get_by_role("button", name="Confirm and connect").click()
    assert "Your request is on its way to Acme" in await flash(page_b)
    cid = page_b.url.rsplit("/", 1)[1]
    await states(a, b, cid, "active")
    await page_b.reload()
    assert await page_b.locator("h1 .status").inner_text() == "Active"

    # A's side: active, with the invitation's inbound settings, the invitation used
    settings = (await a.api("GET", f"/api/v1/connections/{cid}/settings"))["settings"]["inbound"]
    wf = next(w for w in (await a.api("GET", "/api/v1/workflows"))["workflows"] if w["name"] == "Mortgages")
    assert settings["workflow_id"] == wf["id"] and settings["stage_id"] == wf["stages"][1]["id"]
    assert settings["folder"] == "Harbour" and settings["assignment"]["rule"] == "fixed"
    await page.goto(a.url + "/connections")
    row = page.get_by_role("row", name=re.compile("Harbour Realty"))
    assert "Active" in await row.inner_text() and fingerprint_of(b.node.me) in await row.inner_text()
    assert "They send us referrals" in await row.inner_text()
    assert "No invitation is waiting" in await page.content()
    await look(page, "connections-list")
    await row.get_by_role("link", name="Harbour Realty").click()
    assert "Mortgages" in await page.locator("#f-workflow_id").inner_text()
    assert await page.locator("#f-stage_id").input_value() == wf["stages"][1]["id"]
    await look(page, "connections-detail-admin")


# --- request to connect, by a user's e-mail ---------------------------------------------


async def test_request_to_connect_mails_the_named_user_whose_link_opens_the_request_after_sign_in(
        node_factory, browser, smtp) -> None:
    a = await node_factory("Acme", **smtp_settings(smtp))
    b = await node_factory("Harbour", **smtp_settings(smtp))
    bree = await add_user(b, "bree@harbour.example", "Bree Harbour", "admin")
    setup = await new_page(browser)
    await choose_password(setup, bree["password_link"])  # Bree has an account; she signs out
    await setup.get_by_role("button", name="Sign out").click()

    page = await admin_page(browser, a)
    await page.goto(a.url + "/connections")
    await page.get_by_role("link", name="Request to connect").click()
    await look(page, "connections-request")
    await page.get_by_label("Their node's address").fill(b.url)
    await page.get_by_label("E-mail address of a user there").fill("bree@harbour.example")
    await page.get_by_label("Referrals").select_option(label="Both ways")
    await page.get_by_label("Message to them").fill("Hello Bree,\nwe met at the conference.")
    await page.get_by_role("button", name="Continue").click()
    assert await page.get_by_role("heading", level=1).inner_text() == "Is this Harbour?"
    assert await fingerprint(b) in await page.content()
    assert "we met at the conference." in await page.content()
    await look(page, "connections-confirm-request")
    await page.get_by_role("button", name="Confirm and send the request").click()
    assert "Your request is on its way to Harbour" in await flash(page)
    cid = page.url.rsplit("/", 1)[1]
    assert "We asked them to connect" in await page.locator(".lead").inner_text()
    await look(page, "connections-detail-requested")

    mail = await smtp.wait_for("bree@harbour.example", "Acme asks to connect with Harbour")
    text = text_of(mail)
    assert "Acme Admin (admin@acme.example) sent the request and named you" in text
    assert "we met at the conference." in text and await fingerprint(a) in text
    assert "Accept the invitation" in text and "you would send each other referrals" in text
    link = link_in(mail, r"http://\S+/connections/\S+")
    assert link == f"{b.url}/connections/{cid}"
    # Bree, an admin who wants these mails, can answer: the other admins are not mailed
    await asyncio.sleep(0.5)
    assert not [m for m in smtp.messages if b.extra["admin_email"] in str(m["To"])]

    # the link, signed out: sign in first, then the pending request
    bree_page = await new_page(browser)
    await bree_page.goto(link)
    assert "/login" in bree_page.url
    await bree_page.get_by_label("E-mail address").fill("bree@harbour.example")
    await bree_page.get_by_label("Password").fill(PASSWORD)
    await bree_page.get_by_role("button", name="Sign in").click()
    await bree_page.wait_for_url(link)
    assert await bree_page.get_by_role("heading", level=1).inner_text() == "Acme Requested"
    answer = bree_page.locator("section.answer")
    assert "we met at the conference." in await answer.inner_text()
    assert await fingerprint(a) in await answer.inner_text()
    await look(bree_page, "connections-detail-pending")
    await bree_page.goto(b.url + "/connections")
    assert "Acme asks to connect" in await bree_page.locator("section.pending").inner_text()
    await look(bree_page, "connections-list-pending")
    await bree_page.get_by_role("link", name="Acme").first.click()
    await bree_page.get_by_role("button", name="Accept").click()
    assert "You accepted Acme" in await flash(bree_page)
    await states(a, b, cid, "active")
    assert (await connection(a, cid))["direction"] == "both"
    await page.reload()
    assert await page.locator("h1 .status").inner_text() == "Active"


async def test_declining_with_a_message_reaches_the_requester(node_factory, browser) -> None:
    a = await node_factory("Acme")
    b = await node_factory("Harbour")
    cid = await request_by_api(a, b, b.extra["admin_email"], "Shall we?")
    page_b = await admin_page(browser, b)
    await page_b.goto(f"{b.url}/connections/{cid}")
    await page_b.get_by_label("Message to them").fill("We only work with conveyancers,\nsorry.")
    await page_b.get_by_role("button", name="Decline").click()
    assert "You declined Acme's request. They will see your message." in await flash(page_b)
    assert await page_b.locator("h1 .status").inner_text() == "Declined"
    await states(a, b, cid, "refused")

    page_a = await admin_page(browser, a)
    await page_a.goto(a.url + "/connections")
    await page_a.get_by_role("link", name="Harbour").click()
    note = page_a.locator(".note")
    assert await note.get_by_role("heading").inner_text() == "Their answer"
    assert await note.locator(".message").inner_text() == "We only work with conveyancers,\nsorry."
    assert not await page_a.get_by_role("link", name="Disconnect").count()
    await look(page_a, "connections-detail-declined")

    # a request still waiting can be withdrawn by the side that sent it
    again = await request_by_api(a, b, b.extra["admin_email"])
    await page_a.goto(f"{a.url}/connections/{again}")
    await page_a.get_by_role("link", name="Withdraw the request").click()
    assert await page_a.get_by_role("heading", level=1).inner_text() == "Withdraw the request to Harbour?"
    await page_a.get_by_role("button", name="Withdraw the request").click()
    assert await flash(page_a) == "You withdrew your request to Harbour. Their node is told."
    await states(a, b, again, "disconnected")


# --- a connection's page: settings, health, disconnect --------------------------------


async def test_connection_page_saves_settings_and_disconnects_with_a_reason(node_factory, browser) -> None:
    a = await node_factory("Acme")
    b = await node_factory("Harbour")
    await workflow(b, "Mortgages", ["Enquiry", "Application"])
    await workflow(b, "Insurance", ["Quote", "Bound"])
    ann = (await add_user(b, "ann@harbour.example", "Ann Adviser"))["user"]
    bob = (await add_user(b, "bob@harbour.example", "Bob Broker"))["user"]
    cid = await connect_by_api(b, a, "both")
    page = await admin_page(browser, b)
    await page.goto(b.url + "/connections")
    await page.get_by_role("link", name="Acme").click()
    assert "Connected: referrals can travel." in await page.locator(".lead").inner_text()
    health = await page.locator("section", has=page.get_by_role("heading", name="Deliveries")).inner_text()
    assert "Waiting to go\nNothing" in health and "Last heard from them" in health and "Never" not in health

    # inbound: a workflow and stage by name, in turn between two people; a missing person first
    await page.get_by_label("Workflow", exact=True).select_option(label="Insurance")
    await page.get_by_label("Stage", exact=True).select_option(label="Bound")
    await page.get_by_label("Folder").fill("From Acme")
    await page.get_by_role("radio", name="In turn among the people chosen below").check()
    await page.get_by_role("button", name="Save inbound settings").click()
    assert "Tick the people who get new deals in turn." in await page.locator(".error-summary").inner_text()
    assert await page.get_by_label("Folder").input_value() == "From Acme"  # kept
    assert await page.get_by_label("Client's e-mail").is_checked()  # the other form shows what is stored
    await look(page, "connections-detail-errors")
    await page.get_by_label("Ann Adviser (ann@harbour.example)").check()
    await page.get_by_label("Bob Broker (bob@harbour.example)").check()
    await page.get_by_role("button", name="Save inbound settings").click()
    assert await flash(page) == "The inbound settings are saved."
    settings = (await b.api("GET", f"/api/v1/connections/{cid}/settings"))["settings"]
    insurance = next(w for w in (await b.api("GET", "/api/v1/workflows"))["workflows"] if w["name"] == "Insurance")
    assert settings["inbound"]["workflow_id"] == insurance["id"]
    assert settings["inbound"]["stage_id"] == insurance["stages"][1]["id"]
    assert settings["inbound"]["folder"] == "From Acme"
    assert settings["inbound"]["assignment"] == {"rule": "round_robin", "user_ids": [ann["id"], bob["id"]],
                                                 "user_id": None}

    # outbound: from one workflow, a type, fewer fields; a bad type first
    await page.get_by_label("Mortgages").check()
    await page.get_by_label("Referral type").fill("Home Loan")
    await page.get_by_label("Client's date of birth").uncheck()
    await page.get_by_label("Client's phone").uncheck()
    await page.get_by_role("button", name="Save outbound settings").click()
    assert "use lower-case letters" in await page.locator(".error-summary").inner_text()
    assert not await page.get_by_label("Client's phone").is_checked()  # what was sent is shown again
    await page.get_by_label("Referral type").fill("mortgage")
    await page.get_by_role("button", name="Save outbound settings").click()
    assert await flash(page) == "The outbound settings are saved."
    after = (await b.api("GET", f"/api/v1/connections/{cid}/settings"))["settings"]
    mortgages = next(w for w in (await b.api("GET", "/api/v1/workflows"))["workflows"] if w["name"] == "Mortgages")
    assert after["outbound"]["workflow_ids"] == [mortgages["id"]]
    assert after["outbound"]["referral_type"] == "mortgage"
    assert "deal.title" in after["outbound"]["allowed_fields"]
    assert not {"contacts.phone", "contacts.date_of_birth"} & set(after["outbound"]["allowed_fields"])
    assert after["inbound"] == settings["inbound"]  # the other form's settings are untouched
    await look(page, "connections-detail-saved")

    # disconnect, after a confirmation step, with a reason the other side sees
    await page.get_by_role("link", name="Disconnect").click()
    assert await page.get_by_role("heading", level=1).inner_text() == "Disconnect from Acme?"
    await look(page, "connections-disconnect")
    await page.get_by_label("Reason").fill("We stopped offering mortgages.")
    await page.get_by_role("button", name="Disconnect").click()
    assert await flash(page) == "You disconnected from Acme. Their node is told."
    await states(a, b, cid, "disconnected")
    page_a = await admin_page(browser, a)
    await page_a.goto(f"{a.url}/connections/{cid}")
    assert "We stopped offering mortgages." in await page_a.locator(".note").inner_text()
    assert not await page_a.get_by_role("button", name="Save inbound settings").count()
    await look(page_a, "connections-detail-disconnected")


# --- brokers ---------------------------------------------------------------------------


async def test_brokers_read_connections_but_every_admin_action_is_refused(node_factory, browser) -> None:
    a = await node_factory("Acme")
    b = await node_factory("Harbour")
    c = await node_factory("Coral")
    cid = await connect_by_api(a, b, "both")
    pending = await request_by_api(c, a, a.extra["admin_email"])
    invitation = await a.api("POST", "/api/v1/invitations", {"name": "Delta Homes"})
    iid = invitation["invitation"]["id"]
    before = (await a.api("GET", f"/api/v1/connections/{cid}/settings"))["settings"]
    page = await user_page(browser, a, "bo@acme.example", "Bo Broker")

    await page.get_by_role("link", name="Connections").click()
    assert not await page.get_by_role("link", name="Invite an organisation").count()
    assert not await page.get_by_role("link", name="Request to connect").count()
    assert "Open invitations" not in await page.content() and "Delta Homes" not in await page.content()
    assert "an admin must answer" in await page.locator("section.pending").inner_text()
    await look(page, "connections-list-broker")
    await page.get_by_role("link", name="Harbour").click()
    assert not await page.locator("form[action$='/inbound'], form[action$='/outbound']").count()
    assert not await page.get_by_role("link", name="Disconnect").count()
    assert "Land in" in await page.content() and "May carry" in await page.content()
    await look(page, "connections-detail-broker")
    await page.goto(f"{a.url}/connections/{pending}")
    assert "Only an admin can accept or decline it." in await page.content()
    assert not await page.get_by_role("button", name="Accept").count()

    for path in ("/connections/invite", "/connections/connect", "/connections/request",
                 f"/connections/{cid}/disconnect"):
        await page.goto(a.url + path)
        assert await page.get_by_role("heading", level=1).inner_text() == "Not allowed", path
        assert "forbidden" in await page.content()
    await look(page, "connections-forbidden-broker")

    http = await Http.sign_in(a, "bo@acme.example")
    try:
        posts = {
            "/connections/invite": {"name": "Sneaky"},
            f"/connections/invitations/{iid}/send": {"referral_url": invitation["referral_url"],
                                                     "referral_key": invitation["referral_key"],
                                                     "name": "X", "email": "x@example.com"},
            f"/connections/invitations/{iid}/revoke": {},
            "/connections/connect/check": {"referral_url": "http://x.example", "referral_key": "rnk1_x"},
            "/connections/connect": {"referral_url": "http://x.example", "referral_key": "rnk1_x"},
            "/connections/request/check": {"url": c.url, "email": "admin@coral.example"},
            "/connections/request": {"url": c.url, "email": "admin@coral.example"},
            f"/connections/{pending}/accept": {},
            f"/connections/{pending}/decline": {"message": "no"},
            f"/connections/{cid}/disconnect": {"reason": "bye"},
            f"/connections/{cid}/inbound": {"folder": "Hijacked"},
            f"/connections/{cid}/outbound": {"referral_type": "hijacked"},
        }
        for path, data in posts.items():
            status, body = await http.post(path, data)
            assert status == 403 and "forbidden" in body, (path, status)
        for path in ("/connections/invite", "/connections/connect", "/connections/request",
                     f"/connections/{cid}/disconnect"):
            assert (await http.get(path))[0] == 403, path
        assert (await http.get(f"/connections/{cid}"))[0] == 200
    finally:
        await http.close()
    # nothing changed
    assert (await connection(a, cid))["state"] == "active"
    assert (await connection(a, pending))["state"] == "requested"
    assert (await a.api("GET", f"/api/v1/connections/{cid}/settings"))["settings"] == before
    assert sorted((i["name"], i["state"]) for i in (await a.api("GET", "/api/v1/invitations"))["invitations"]) == [
        ("Delta Homes", "open"), ("Harbour", "used")]
    assert await a.node.db.read(invitation_mails) == 0


# --- names are text --------------------------------------------------------------------


async def test_names_and_messages_from_anyone_are_shown_as_text(node_factory, browser) -> None:
    a = await node_factory("Acme")
    evil = await node_factory("Evil", org_name=EVIL)
    dialogs: list[str] = []
    page = await admin_page(browser, a)
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))

    await page.goto(a.url + "/connections/request")
    await page.get_by_label("Their node's address").fill(evil.url)
    await page.get_by_label("E-mail address of a user there").fill(evil.extra["admin_email"])
    await page.get_by_label("Message to them").fill(f"Hi {EVIL}")
    await page.get_by_role("button", name="Continue").click()
    assert await page.get_by_role("heading", level=1).inner_text() == f"Is this {EVIL}?"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in await page.content()
    await look(page, "connections-xss-confirm", phone_too=False)
    await page.get_by_role("button", name="Confirm and send the request").click()
    cid = page.url.rsplit("/", 1)[1]
    assert (await page.locator("h1").inner_text()).startswith(EVIL)
    await page.goto(a.url + "/connections")
    assert await page.get_by_role("link", name=EVIL).count() == 1
    await look(page, "connections-xss-list", phone_too=False)

    await page.get_by_role("link", name="Invite an organisation").click()
    await page.get_by_label("Organisation's name").fill(EVIL)
    await page.get_by_role("button", name="Make the invitation").click()
    assert await page.get_by_role("heading", level=1).inner_text() == f"Invitation for {EVIL}"
    await page.goto(a.url + "/connections")
    assert EVIL in await page.locator("#h-invitations + .table-wrap").inner_text()
    await page.get_by_role("button", name=f"Revoke the invitation for {EVIL}").click()
    assert await flash(page) == f"The invitation for {EVIL} is revoked: its key no longer works."
    assert "No invitation is waiting to be used." in await page.content()

    evil_page = await admin_page(browser, evil)
    evil_page.on("dialog", lambda dialog: dialogs.append(dialog.message))

    async def arrived() -> bool:
        return any(c["id"] == cid for c in (await evil.api("GET", "/api/v1/connections"))["connections"])

    await wait_for(arrived)
    await evil_page.goto(f"{evil.url}/connections/{cid}")
    assert await evil_page.locator("blockquote.message").inner_text() == f"Hi {EVIL}"
    assert EVIL in await evil_page.locator(".brand").inner_text()
    await look(evil_page, "connections-xss-pending", phone_too=False)
    assert dialogs == []
    assert "<script>alert(1)</script>" not in (await evil_page.content()).replace(
        '<script src="', "")  # the only scripts are our own files


# --- bad input -------------------------------------------------------------------------


async def test_unknown_ids_wrong_states_and_bad_forms_get_error_pages(node_factory, browser) -> None:
    a = await node_factory("Acme")
    b = await node_factory("Harbour")
    wf = await workflow(a, "Mortgages", ["Enquiry", "Application"])
    other = await workflow(a, "Insurance", ["Quote"])
    cid = await connect_by_api(a, b, "both")
    pending = await request_by_api(b, a, a.extra["admin_email"])
    one = await a.api("POST", "/api/v1/invitations", {"name": "One"})
    two = await a.api("POST", "/api/v1/invitations", {"name": "Two"})
    await admin_page(browser, a)  # the admin's password is chosen
    http = await Http.sign_in(a, a.extra["admin_email"])
    try:
        status, body = await http.get("/connections/con_nope")
        assert status == 404 and "unknown_subject" in body
        for path in ("/connections/con_nope/accept", "/connections/con_nope/decline",
                     "/connections/con_nope/disconnect", "/connections/con_nope/inbound",
                     "/connections/con_nope/outbound", "/connections/invitations/inv_nope/revoke"):
            status, body = await http.post(path)
            assert status == 404 and "unknown_subject" in body, (path, status)
        status, body = await http.post(f"/connections/{cid}/accept")  # already active
        assert status == 409 and "invalid_transition" in body
        status, body = await http.post(f"/connections/{pending}/decline", {"message": "x" * 8001})
        assert status == 400 and "Message must be at most 8000 characters" in body
        assert (await connection(a, pending))["state"] == "requested"

        # the mail form sends only the invitation's own URL and key, of an open invitation
        mail = {"name": "Hana", "email": "hana@harbour.example"}
        status, body = await http.post(f"/connections/invitations/{one['invitation']['id']}/send",
                                       {"referral_url": two["referral_url"], "referral_key": two["referral_key"],
                                        **mail})
        assert status == 403 and "invitation_invalid" in body
        status, body = await http.post(f"/connections/invitations/{one['invitation']['id']}/send",
                                       {"referral_url": one["referral_url"], "referral_key": two["referral_key"],
                                        "name": "Hana", "email": "nope"})
        assert status == 403 and "invitation_invalid" in body  # never shown again with another key
        await a.api("POST", f"/api/v1/invitations/{two['invitation']['id']}/revoke")
        status, body = await http.post(f"/connections/invitations/{two['invitation']['id']}/send",
                                       {"referral_url": two["referral_url"], "referral_key": two["referral_key"],
                                        **mail})
        assert status == 409 and "revoked" in body
        assert await a.node.db.read(invitation_mails) == 0

        # the invitation form: a stage of another workflow, an unknown workflow, a made-up expiry
        for data, says in (({"workflow_id": other["id"], "stage_id": wf["stages"][1]["id"]},
                            "is not in workflow 'Insurance'"),
                           ({"workflow_id": "wf_nope"}, "wf_nope"),
                           ({"ttl_days": "5000"}, "Choose how long the invitation lasts."),
                           ({"direction": "sideways"}, "Direction"),
                           ({"rule": "fixed"}, "Choose the person who gets every new deal.")):
            status, body = await http.post("/connections/invite", {"name": "Z", **data})
            assert status == 400 and says in body and "error-summary" in body, (data, status)
        assert len((await a.api("GET", "/api/v1/invitations"))["invitations"]) == 3  # the used one, One, Two
        status, body = await http.post(f"/connections/{cid}/inbound",
                                       {"workflow_id": other["id"], "stage_id": wf["stages"][0]["id"]})
        assert status == 400 and "is not in workflow" in body

        # connecting: a damaged URL, a node that does not answer, this node itself
        status, body = await http.post("/connections/connect/check",
                                       {"referral_url": "http://example.com/x", "referral_key": one["referral_key"]})
        assert status == 400 and "Not a referral URL: it has no /refnode/v1/invitations/" in body
        status, body = await http.post("/connections/request/check",
                                       {"url": "http://127.0.0.1:9", "email": "x@example.com"})
        assert status == 400 and "We could not reach their node" in body
        status, body = await http.post("/connections/request/check", {"url": a.url, "email": "x@example.com"})
        assert status == 400 and "That is this node" in body
        status, body = await http.post("/connections/request", {"url": b.url, "email": "x@example.com",
                                                                 "node_id": a.node.me})
        assert status == 400 and "no longer the one whose fingerprint you were shown" in body
        assert len((await a.api("GET", "/api/v1/connections"))["connections"]) == 2
        status, body = await http.post("/connections/invite", {"name": "Bad\x07name"})
        assert status == 400 and "invalid" in body
    finally:
        await http.close()
