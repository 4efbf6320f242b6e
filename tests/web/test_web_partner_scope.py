"""What each role may reach around the partner portal (issue 13), through pages in a real
browser and through raw HTTP with each role's own session: a partner reaches their own
deals in the portal and nothing else (another partner's deal, a deal not shared with
them, a private note, a file on another deal, any console page: 404, the same answer as
for something that does not exist; the API: the 401 of anyone without a token);
brokers and admins never reach the portal; a removed partner's sessions end at once."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from test_web_deal_files import session_of
from test_web_deals import workflow
from web_kit import PASSWORD, check_page, choose_password, new_page

from node.crm import accounts, partner_deals, partners, portal
from node.crm.access import Caller
from node.crm.models import DocumentIn, NoteIn
from node.web.views import PRE_COOKIE, SESSION_COOKIE, csrf_token


async def setup(a: Any) -> dict[str, Any]:
    wf = await workflow(a)
    broker = (await a.api("POST", "/api/v1/users", {"email": "bea@acme.example", "name": "Bea Broker",
                                                    "role": "broker"}, expect=201))
    broker_id = broker["user"]["id"]
    unshared = (await a.api("POST", "/api/v1/deals", {"title": "Broker only", "workflow_id": wf["id"],
                                                      "stage_id": wf["stages"][0]["id"]}, expect=201))["deal"]

    def build(conn: Any) -> dict[str, Any]:
        now = a.node.clock.now()
        portal.save_settings(conn, portal.PortalSettings(wf["id"], True, True, frozenset(), "v1", "We pass it on."))
        made = {}
        for key, name in (("p1", "Pat One"), ("p2", "Pia Two")):
            p = partners.create_partner(conn, partners.PartnerIn(name=name, email=f"{key}@partners.example",
                                                                 phone="0400 000 000"), [broker_id], added_by=None,
                                        now=now)
            caller = Caller(p.id, p.email, p.name, "partner")
            deal = partner_deals.create_deal(
                conn, caller, title=f"{name}'s client", owner_id=broker_id, message="", consented=True, now=now,
                clients=[partner_deals.NewClient("Chris", "Client", "chris@c.example", "0400 111 222")])
            doc = partners_doc(conn, deal.id, p.id, now)
            made[key] = {"id": p.id, "deal": deal.id, "doc": doc,
                         "link": a.url + "/partner/set-password/" + accounts.new_password_link(conn, p.id, "set", now,
                                                                                                3600)}
        private = partners_note(conn, made["p1"]["deal"], broker_id, "Private: internal only", now)
        shared = partners_note(conn, made["p1"]["deal"], broker_id, "Shared: hello Pat", now)
        partners.share_note(conn, shared, made["p1"]["deal"], shared=True, by=broker_id, now=now)
        broker_doc = partners_doc(conn, made["p1"]["deal"], None, now)
        unshared_doc = partners_doc(conn, unshared["id"], None, now)
        return {**made, "private": private, "broker_doc": broker_doc, "unshared_doc": unshared_doc}

    made = await a.node.db.write(build)
    return {**made, "unshared": unshared["id"], "broker_link": broker["password_link"]}


def partners_doc(conn: Any, deal_id: str, partner_id: str | None, now: Any) -> str:
    from node.crm import store as crm

    doc = crm.add_document(conn, DocumentIn(deal_id=deal_id, name="file.pdf", size_bytes=10, sha256="0" * 64),
                           now=now)
    if partner_id:
        partners.record_document(conn, doc.id, partner_id)
    return doc.id


def partners_note(conn: Any, deal_id: str, author: str, body: str, now: Any) -> str:
    from node.crm import store as crm

    return crm.add_note(conn, NoteIn(deal_id=deal_id, body=body), now=now, author_user_id=author).id


async def status_of(http: aiohttp.ClientSession, url: str, method: str = "GET", **kw: Any) -> tuple[int, str]:
    headers = {"Accept": "text/html", **kw.pop("headers", {})}
    async with http.request(method, url, allow_redirects=False, headers=headers, **kw) as r:
        return r.status, await r.text()


def csrf_of(http: aiohttp.ClientSession) -> str:
    sid = next(c.value for c in http.cookie_jar if c.key == SESSION_COOKIE)
    return csrf_token(sid)


CONSOLE = ["/deals", "/contacts", "/referrals", "/reports", "/opportunities", "/connections", "/settings", "/admin",
           "/admin/users", "/admin/partners", "/admin/partner-portal", "/search?q=Chris"]


async def test_partner_reaches_only_their_own(node_factory, browser) -> None:
    a = await node_factory("Acme")
    w = await setup(a)
    p1, p2 = w["p1"], w["p2"]
    page = await new_page(browser)
    await choose_password(page, p1["link"])
    http = await session_of(page, a)
    try:
        ok, text = await status_of(http, a.url + f"/partner/deals/{p1['deal']}")
        assert ok == 200 and "Shared: hello Pat" in text and "Private: internal only" not in text
        # another partner's deal, a deal not shared, and no deal at all: one answer
        answers = {await status_of(http, a.url + f"/partner/deals/{d}") for d in
                   (p2["deal"], w["unshared"], "deal_01kdyak3487aj56vd0mvtn85v7")}
        assert len(answers) == 1 and next(iter(answers))[0] == 404
        # files: another partner's, one on a deal not shared, the broker's own on the
        # partner's deal, and one that does not exist. Asked for through the deal they
        # are on, each gets the answer for a deal that does not exist ...
        made_up_deal, made_up_doc = "deal_01kdyak3487aj56vd0mvtn85v7", "doc_01kdyak3487aj56vd0mvtn85v7"
        answers = {await status_of(http, a.url + f"/partner/deals/{deal}/documents/{doc}") for deal, doc in (
            (p2["deal"], p2["doc"]), (w["unshared"], w["unshared_doc"]), (made_up_deal, made_up_doc))}
        assert answers == {await status_of(http, a.url + f"/partner/deals/{made_up_deal}")}
        # ... and through the partner's own deal, the answer for a file that does not exist
        answers = {await status_of(http, a.url + f"/partner/deals/{p1['deal']}/documents/{doc}") for doc in (
            p2["doc"], w["unshared_doc"], w["broker_doc"], made_up_doc)}
        assert len(answers) == 1 and next(iter(answers))[0] == 404, answers
        # writing to a deal that is not theirs: 404, nothing written
        csrf = csrf_of(http)
        notes_before = await a.node.db.read(lambda conn: conn.execute("SELECT count(*) FROM notes").fetchone()[0])
        for deal in (p2["deal"], w["unshared"]):
            assert (await status_of(http, a.url + f"/partner/deals/{deal}/notes", "POST",
                                    data={"csrf": csrf, "body": "sneaky"}))[0] == 404
            form = aiohttp.FormData()
            form.add_field("file", b"%PDF-1.7\n%%EOF\n", filename="x.pdf", content_type="application/pdf")
            assert (await status_of(http, a.url + f"/partner/deals/{deal}/documents?csrf={csrf}", "POST",
                                    data=form))[0] == 404
        assert (await status_of(http, a.url + f"/deals/{p1['deal']}/notes", "POST",
                                data={"csrf": csrf, "body": "sneaky"}))[0] == 404
        assert (await status_of(http, a.url + f"/admin/partners/{p2['id']}/remove", "POST",
                                data={"csrf": csrf}))[0] == 404
        assert await a.node.db.read(lambda conn: conn.execute("SELECT count(*) FROM notes").fetchone()[0]) \
            == notes_before
        # every console page and the deal in the console: 404; the home page leads to the portal
        for path in [*CONSOLE, f"/deals/{p1['deal']}", f"/deals/{p1['deal']}/documents/{p1['doc']}"]:
            status, _ = await status_of(http, a.url + path)
            assert status == 404, path
        status, _ = await status_of(http, a.url + "/")
        assert status == 303
        # the client portal's broker pages are console pages: 404; its client pages want a
        # client's passcode sign-in, which a partner's session is not
        for path in (f"/deals/{p1['deal']}/portal", "/settings/portal", "/admin/portal"):
            assert (await status_of(http, a.url + path))[0] == 404, path
        for path in ("/client/", "/client/dashboard", "/client/fact-find", "/client/check-answers"):
            async with http.get(a.url + path, allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"].startswith("/client/sign-in"), path
        # the API, the admin's routes above all, with the partner's cookie: one refusal
        # (401, unauthenticated), and nothing written. That status leaks nothing: the API
        # reads no cookie and asks for a bearer token before it looks anything up, so the
        # answer is the same for a deal of theirs, another's or none, for an admin's
        # route or a broker's, and for anyone without a token, signed in or not
        tables = ("users", "deals", "partner_brokers", "api_tokens", "outbox", "mail_queue")
        before = await a.node.db.read(lambda conn: [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                                                    for t in tables])  # noqa: S608 (our names)
        wf_id = (await a.api("GET", f"/api/v1/deals/{p1['deal']}"))["deal"]["workflow_id"]
        tries = [("GET", "/api/v1/users", None), ("GET", "/api/v1/deals", None),
                 ("GET", f"/api/v1/deals/{p1['deal']}", None), ("GET", f"/api/v1/deals/{p2['deal']}", None),
                 ("GET", "/api/v1/deals/deal_01kdyak3487aj56vd0mvtn85v7", None),
                 ("POST", "/api/v1/users", {"email": "mallory@p.example", "name": "Mallory", "role": "admin"}),
                 ("POST", "/api/v1/tokens", {"user_id": p1["id"], "label": "mine"}),
                 ("PATCH", f"/api/v1/users/{p1['id']}", {"role": "admin"}),
                 ("POST", "/api/v1/deals", {"title": "Sneaky", "workflow_id": wf_id}),
                 ("POST", f"/api/v1/deals/{p2['deal']}/move", {"stage_id": "stg_01kdyak3487aj56vd0mvtn85v7"})]
        answers = set()
        for method, path, body in tries:
            async with http.request(method, a.url + path, json=body) as r:
                answers.add((r.status, await r.text()))
        assert len(answers) == 1, answers
        status, body = answers.pop()
        assert (status, json.loads(body)["error"]["code"]) == (401, "unauthenticated")
        assert await a.node.db.read(lambda conn: [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                                                  for t in tables]) == before  # noqa: S608 (our names)
        # ... and a partner can be given no token
        await a.api("POST", "/api/v1/tokens", {"user_id": p1["id"], "label": "x"}, expect=404)
        assert (await a.api("GET", "/api/v1/users"))["users"] and all(
            u["role"] != "partner" for u in (await a.api("GET", "/api/v1/users"))["users"])
        # ... and through the browser's pages too
        for path in ("/deals", f"/deals/{p1['deal']}", "/admin", f"/partner/deals/{p2['deal']}"):
            response = await page.goto(a.url + path)
            assert response is not None and response.status == 404, path
            assert "There is no" in await page.locator("main").inner_text()
            assert "Pia" not in await page.content()
        await check_page(page, "partner-not-found")
    finally:
        await http.close()


async def test_console_users_never_reach_the_portal_and_removal_ends_sessions(node_factory, browser) -> None:
    a = await node_factory("Acme")
    w = await setup(a)
    p1 = w["p1"]
    admin = await new_page(browser)
    await choose_password(admin, a.extra["password_link"])
    broker = await new_page(browser)
    await choose_password(broker, w["broker_link"])
    for page in (admin, broker):
        http = await session_of(page, a)
        try:
            for path in ("/partner/", f"/partner/deals/{p1['deal']}", "/partner/settings", "/partner/deals/new"):
                assert (await status_of(http, a.url + path))[0] == 404, path
        finally:
            await http.close()

    # the partner signed in twice: in the browser, and through the sign-in form from
    # another client with cookies of its own
    partner = await new_page(browser)
    await choose_password(partner, p1["link"])
    other = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        await sign_in_over_http(other, a, "p1@partners.example")
        sids = {c.value for c in other.cookie_jar if c.key == SESSION_COOKIE} | {
            c["value"] for c in await partner.context.cookies() if c["name"] == SESSION_COOKIE}
        assert len(sids) == 2  # two sessions, not one shared
        assert (await status_of(other, a.url + "/partner/"))[0] == 200
        await partner.goto(a.url + "/partner/")
        assert partner.url.endswith("/partner/")
        await admin.goto(a.url + "/admin/partners")
        await admin.get_by_role("button", name="Remove Pat One").click()
        assert "is removed" in await admin.locator(".flash").inner_text()
        # both sessions are refused at their next request
        status, _ = await status_of(other, a.url + f"/partner/deals/{p1['deal']}")
        assert status == 303  # to sign in: the session has ended
        await partner.goto(a.url + f"/partner/deals/{p1['deal']}")
        assert "/partner/login" in partner.url
        # ... and signing in again is refused
        await partner.get_by_label("E-mail address").fill("p1@partners.example")
        await partner.get_by_label("Password").fill(PASSWORD)
        await partner.get_by_role("button", name="Sign in").click()
        assert "do not match" in await partner.locator(".error-summary").inner_text()
        # the partner's deal stays with its broker
        deal = (await a.api("GET", f"/api/v1/deals/{p1['deal']}"))["deal"]
        assert deal["title"] == "Pat One's client"
    finally:
        await other.close()


async def sign_in_over_http(http: aiohttp.ClientSession, a: Any, email: str, password: str = PASSWORD, *,
                            expect: int = 303) -> None:
    """Sign in through the portal's sign-in form, as a browser without JavaScript would;
    ``expect``: the answer's status (303 to the portal, or a refusal)."""
    async with http.get(a.url + "/partner/login") as r:
        assert r.status == 200
    seed = next(c.value for c in http.cookie_jar if c.key == PRE_COOKIE)
    form = {"csrf": csrf_token(seed), "next": "/partner/", "portal": "partner", "email": email, "password": password}
    async with http.post(a.url + "/login", data=form, allow_redirects=False) as r:
        if expect == 303:
            assert (r.status, r.headers.get("Location")) == (303, "/partner/")
        else:
            assert r.status == expect and "do not match" in await r.text()


async def test_a_note_shared_after_it_was_added_shows_in_the_portal_until_sharing_stops(node_factory, browser) -> None:
    a = await node_factory("Acme")
    w = await setup(a)
    p1 = w["p1"]
    broker, partner = await new_page(browser), await new_page(browser)
    await choose_password(broker, w["broker_link"])
    await choose_password(partner, p1["link"])
    http = await session_of(partner, a)
    try:
        portal_url = a.url + f"/partner/deals/{p1['deal']}"
        await partner.goto(portal_url)
        assert "Private: internal only" not in await partner.locator("#notes").inner_text()
        # the broker shares the private note from the deal's page
        await broker.goto(a.url + f"/deals/{p1['deal']}")
        note = broker.locator("#notes li").filter(has_text="Private: internal only")
        assert "Private" in await note.locator(".note-share").inner_text()
        await note.get_by_role("button", name="Share with partner this note").click()
        assert "The note is shared" in await broker.locator(".flash").inner_text()
        note = broker.locator("#notes li").filter(has_text="Private: internal only")
        assert "Shared with partner" in await note.inner_text()
        await partner.reload()
        assert "Private: internal only" in await partner.locator("#notes").inner_text()
        # ... and stops sharing it: gone from the page and from the raw answer
        await note.get_by_role("button", name="Stop sharing this note").click()
        assert "no longer shared" in await broker.locator(".flash").inner_text()
        await partner.reload()
        notes = await partner.locator("#notes").inner_text()
        assert "Private: internal only" not in notes and "Shared: hello Pat" in notes
        status, text = await status_of(http, portal_url)
        assert status == 200 and "Private: internal only" not in text
    finally:
        await http.close()
