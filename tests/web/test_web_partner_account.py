"""A partner's own account in the portal (issue 13): changing the password ends every
other session, as the console's change does; a partner with two brokers chooses which
one looks after a new deal."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from test_web_deals import look, workflow
from test_web_partner_scope import setup, sign_in_over_http, status_of
from web_kit import PASSWORD, choose_password, new_page

from node.crm import accounts, partners, portal
from node.web.views import SESSION_COOKIE

NEW_PASSWORD = "a different long passphrase"  # noqa: S105 (a test password)


async def test_a_partners_password_change_ends_their_other_sessions(node_factory, browser) -> None:
    a = await node_factory("Acme")
    w = await setup(a)
    partner = await new_page(browser)
    await choose_password(partner, w["p1"]["link"])
    other = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        await sign_in_over_http(other, a, "p1@partners.example")
        assert (await status_of(other, a.url + "/partner/"))[0] == 200
        await partner.goto(a.url + "/partner/settings")
        # a wrong current password changes nothing
        await partner.get_by_label("Current password").fill("not my password at all")
        await partner.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        await partner.get_by_label("New password again").fill(NEW_PASSWORD)
        await partner.get_by_role("button", name="Change password").click()
        assert "Your current password is not right" in await partner.locator(".field.has-error").inner_text()
        nav = partner.get_by_role("navigation", name="Portal")
        assert await nav.get_by_role("link", name="Settings").get_attribute("aria-current") == "page"
        await look(partner, "partner-settings-password-errors")
        assert (await status_of(other, a.url + "/partner/"))[0] == 200
        # the right one: this browser stays signed in, the other session ends
        before = {c["value"] for c in await partner.context.cookies() if c["name"] == SESSION_COOKIE}
        await partner.get_by_label("Current password").fill(PASSWORD)
        await partner.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        await partner.get_by_label("New password again").fill(NEW_PASSWORD)
        await partner.get_by_role("button", name="Change password").click()
        assert "Your password is changed. Your other sessions are signed out." in \
            await partner.locator(".flash").inner_text()
        after = {c["value"] for c in await partner.context.cookies() if c["name"] == SESSION_COOKIE}
        assert after and after != before  # a new session for this browser
        await partner.goto(a.url + "/partner/")
        assert partner.url.endswith("/partner/")
        status, _ = await status_of(other, a.url + "/partner/")
        assert status == 303  # to sign in: the session has ended
        # the new password signs in, the old one no longer does
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as fresh:
            await sign_in_over_http(fresh, a, "p1@partners.example", NEW_PASSWORD)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as fresh:
            await sign_in_over_http(fresh, a, "p1@partners.example", PASSWORD, expect=401)
        log = await a.node.db.read(lambda conn: [e.action for e in partners.activity(conn, w["p1"]["id"])])
        assert "Changed their password" in log
    finally:
        await other.close()


async def test_a_partner_with_two_brokers_chooses_the_owner(node_factory, browser) -> None:
    a = await node_factory("Acme")
    wf = await workflow(a, "Home loans", ("Lead", "Settled"))
    brokers = []
    for name, email in (("Bea Broker", "bea@acme.example"), ("Cal Broker", "cal@acme.example")):
        made = await a.api("POST", "/api/v1/users", {"email": email, "name": name, "role": "broker"}, expect=201)
        brokers.append(made["user"]["id"])

    def build(conn: Any) -> str:
        now = a.node.clock.now()
        portal.save_settings(conn, portal.PortalSettings(wf["id"], True, True, frozenset(), "v1", "We pass it on."))
        p = partners.create_partner(conn, partners.PartnerIn(name="Pat One", email="p1@partners.example",
                                                             phone="0400 000 000"), brokers, added_by=None, now=now)
        return a.url + "/partner/set-password/" + accounts.new_password_link(conn, p.id, "set", now, 3600)

    partner = await new_page(browser)
    await choose_password(partner, await a.node.db.write(build))
    await partner.get_by_role("link", name="Add new").click()
    broker = partner.get_by_label("Broker", exact=True)
    assert await broker.locator("option").all_inner_texts() == ["Choose a broker", "Bea Broker", "Cal Broker"]
    await partner.get_by_label("First name").fill("Chris")
    await partner.get_by_label("Last name").fill("Client")
    await partner.get_by_label("E-mail address").fill("chris@client.example")
    await partner.get_by_label("Phone number").fill("0400 111 222")
    await partner.get_by_label("The client agreed to be contacted").check()
    await partner.get_by_role("button", name="Create deal").click()
    # no broker chosen: refused on the field, nothing else lost
    assert "Choose the broker who looks after this deal" in await partner.locator(".field.has-error").inner_text()
    assert await partner.get_by_label("First name").input_value() == "Chris"
    await look(partner, "partner-deal-new-two-brokers-errors")
    await broker.select_option(label="Cal Broker")
    await partner.get_by_role("button", name="Create deal").click()
    await partner.wait_for_url(re.compile(r".*/partner/deals/deal_\w+$"))
    deal_id = partner.url.rsplit("/", 1)[1]
    assert "Cal Broker" in await partner.locator("dl").first.inner_text()
    deal = (await a.api("GET", f"/api/v1/deals/{deal_id}"))["deal"]
    assert deal["owner_user_id"] == brokers[1]
