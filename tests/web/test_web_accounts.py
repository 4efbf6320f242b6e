"""Accounts and sessions through the browser and raw HTTP: the first admin's password
link, sign-in, CSRF, lockout and unlock, password reset by mail, sessions that end."""

from __future__ import annotations

import re

import aiohttp
from web_kit import PASSWORD, check_page, choose_password, link_in, new_page, sign_in, smtp_settings

from node.base.clock import FakeClock


async def test_first_admin_sets_password_signs_in_and_sees_home(node_factory, browser) -> None:
    a = await node_factory("Acme")
    page = await new_page(browser)
    await page.goto(a.url + "/")
    assert "/login" in page.url  # no session: sign in first
    await check_page(page, "login")
    await choose_password(page, a.extra["password_link"])
    assert await page.get_by_role("heading", level=1).inner_text() == "Good to see you, Acme Admin"
    # a fresh node: its admin gets the first steps, each a link to its page
    steps = page.get_by_role("region", name="First steps")
    assert [await a.inner_text() for a in await steps.get_by_role("link").all()] == [
        "Create a workflow", "Add the people who work here", "Connect with another organisation"]
    assert await steps.locator(".status").count() == 0  # none done yet
    await check_page(page, "home-empty")
    await steps.get_by_role("link", name="Create a workflow").click()
    assert await page.get_by_role("heading", level=1).inner_text() == "New workflow"
    await page.get_by_label("Name", exact=True).fill("Home loans")
    await page.get_by_label("Stages").fill("Lead\nSettled")
    await page.get_by_role("button", name="Create workflow").click()
    await page.goto(a.url + "/")
    done = page.get_by_role("region", name="First steps").locator("li.done")
    assert await done.count() == 1 and "Create a workflow" in await done.inner_text()
    # the link works once
    await page.goto(a.extra["password_link"])
    assert await page.get_by_role("heading", level=1).inner_text() == "This link does not work"
    # sign out, then in again
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(re.compile(".*/login"))
    await sign_in(page, a.url, a.extra["admin_email"])
    assert "Good to see you" in await page.content()


async def test_pages_send_security_headers_and_cookie_flags(node_factory) -> None:
    a = await node_factory("Acme")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(a.url + "/login") as resp:
            csp = resp.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "unsafe-inline" not in csp
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["Referrer-Policy"] == "same-origin"
            cookie = resp.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        async with http.get(a.url + "/no-such-page", headers={"Accept": "text/html"}) as resp:
            assert resp.status == 404 and "Page not found" in await resp.text()
        async with http.get(a.url + "/api/v1/no-such-route") as resp:
            assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"


async def _csrf(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as resp:
        found = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
        assert found
        return found.group(1)


async def test_form_post_without_csrf_token_is_refused(node_factory) -> None:
    a = await node_factory("Acme")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        token = await _csrf(http, a.extra["password_link"])
        async with http.post(a.extra["password_link"], data={"password": PASSWORD, "password_again": PASSWORD}) as resp:
            assert resp.status == 403 and "csrf_failed" in await resp.text()
        async with http.post(a.extra["password_link"], data={"csrf": "x" + token[1:], "password": PASSWORD,
                                                             "password_again": PASSWORD}) as resp:
            assert resp.status == 403
        # nothing was written: the link still works, with the token
        async with http.post(a.extra["password_link"], data={"csrf": token, "password": PASSWORD,
                                                             "password_again": PASSWORD},
                             allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/"
        # signed in now: a state-changing form without the session's token is refused too
        async with http.post(a.url + "/settings/mail", data={"mail": "new_referral"}) as resp:
            assert resp.status == 403 and "csrf_failed" in await resp.text()
        # another session's token does not pass either
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
            foreign = await _csrf(other, a.url + "/login")
        async with http.post(a.url + "/settings/mail", data={"csrf": foreign}) as resp:
            assert resp.status == 403


async def test_signin_locks_after_failures_and_admin_unlocks(node_factory, browser) -> None:
    a = await node_factory("Acme", signin_failures_limit=3)
    page = await new_page(browser)
    await choose_password(page, a.extra["password_link"])
    created = await a.api("POST", "/api/v1/users", {"email": "bo@acme.example", "name": "Bo Broker"})
    other = await new_page(browser)
    await choose_password(other, created["password_link"])
    await other.get_by_role("button", name="Sign out").click()
    for _ in range(3):
        await other.goto(a.url + "/login")
        await other.get_by_label("E-mail address").fill("bo@acme.example")
        await other.get_by_label("Password").fill("wrong password here")
        await other.get_by_role("button", name="Sign in").click()
    assert "now locked" in await other.content()
    # the right password does not get in while locked
    await other.goto(a.url + "/login")
    await other.get_by_label("E-mail address").fill("bo@acme.example")
    await other.get_by_label("Password").fill(PASSWORD)
    await other.get_by_role("button", name="Sign in").click()
    assert "is locked" in await other.content()
    assert "/login" in other.url
    # the admin lifts the lock on the users page
    await page.goto(a.url + "/admin/users")
    await page.get_by_role("button", name="Unlock Bo Broker").click()
    await sign_in(other, a.url, "bo@acme.example")


async def test_password_reset_by_mail(node_factory, browser, smtp) -> None:
    a = await node_factory("Acme", **smtp_settings(smtp))
    page = await new_page(browser)
    await page.goto(a.url + "/forgot")
    await check_page(page, "forgot")
    await page.get_by_label("E-mail address").fill(a.extra["admin_email"])
    await page.get_by_role("button", name="Send the link").click()
    await page.wait_for_url(re.compile(r".*/forgot/sent$"))
    assert "we have sent it a link" in await page.content()
    await check_page(page, "forgot-sent")
    mail = await smtp.wait_for(a.extra["admin_email"], "Reset your password")
    link = link_in(mail, r"http://\S+/set-password/\S+")
    # the set-password page, as the link opens it (before anything is submitted)
    await page.goto(link)
    assert await page.get_by_label("New password", exact=True).count() == 1
    await check_page(page, "set-password")
    await choose_password(page, link)
    # an unknown address gets the same page and no mail
    await page.goto(a.url + "/forgot")
    await page.get_by_label("E-mail address").fill("nobody@acme.example")
    await page.get_by_role("button", name="Send the link").click()
    assert "we have sent it a link" in await page.content()
    assert all("nobody" not in str(m["To"]) for m in smtp.messages)


async def test_sessions_expire_when_idle_and_after_their_lifetime(node_factory, browser) -> None:
    from datetime import UTC, datetime

    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    a = await node_factory("Acme", start=False, session_idle_s=600, session_absolute_s=3600)
    await a.start(clock=clock)
    page = await new_page(browser)
    await choose_password(page, a.extra["password_link"])
    clock.advance(590)
    await page.goto(a.url + "/settings")
    assert "/settings" in page.url  # still within the idle time
    for _ in range(6):  # active, but the absolute limit still ends it
        clock.advance(590)
        await page.goto(a.url + "/settings")
    assert "/login" in page.url
    await sign_in(page, a.url, a.extra["admin_email"])
    clock.advance(601)  # idle too long
    await page.goto(a.url + "/settings")
    assert "/login" in page.url


def _jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)


async def _set_password(http: aiohttp.ClientSession, link: str) -> None:
    token = await _csrf(http, link)
    async with http.post(link, data={"csrf": token, "password": PASSWORD, "password_again": PASSWORD}) as resp:
        assert resp.status == 200 and "Good to see you" in await resp.text()


async def _sign_in(http: aiohttp.ClientSession, url: str, email: str, next_path: str = "/") -> aiohttp.ClientResponse:
    token = await _csrf(http, url + "/login")
    async with http.post(url + "/login", data={"csrf": token, "email": email, "password": PASSWORD,
                                               "next": next_path}, allow_redirects=False) as resp:
        return resp


def _sid(http: aiohttp.ClientSession) -> str:
    return next(c.value for c in http.cookie_jar if c.key == "rn_session")


async def test_signin_renews_the_session_id_and_next_stays_on_this_site(node_factory) -> None:
    a = await node_factory("Acme")
    async with aiohttp.ClientSession(cookie_jar=_jar()) as http:
        await _set_password(http, a.extra["password_link"])
        first = _sid(http)
        resp = await _sign_in(http, a.url, a.extra["admin_email"], next_path="//evil.example/x")
        assert resp.status == 303 and resp.headers["Location"] == "/"  # never off-site
        second = _sid(http)
        assert second != first
    # the session id from before the sign-in no longer works
    async with aiohttp.ClientSession(cookie_jar=_jar()) as stale:
        stale.cookie_jar.update_cookies({"rn_session": first}, response_url=aiohttp.client.URL(a.url))
        async with stale.get(a.url + "/settings", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/login")


async def test_cookies_are_secure_when_the_public_url_is_https(node_factory) -> None:
    a = await node_factory("Acme", public_url="https://acme.example")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{a.config.port}/login") as resp:
            assert "Secure" in resp.headers["Set-Cookie"]


async def test_changing_the_password_signs_out_other_sessions(node_factory) -> None:
    a = await node_factory("Acme")
    async with aiohttp.ClientSession(cookie_jar=_jar()) as one, aiohttp.ClientSession(cookie_jar=_jar()) as two:
        await _set_password(one, a.extra["password_link"])
        assert (await _sign_in(two, a.url, a.extra["admin_email"])).status == 303
        token = await _csrf(one, a.url + "/settings")
        new = "another long passphrase here"
        async with one.post(a.url + "/settings/password", data={"csrf": token, "current": PASSWORD,
                                                                "password": new, "password_again": new}) as resp:
            assert resp.status == 200 and "Your password is changed" in await resp.text()
        async with one.get(a.url + "/settings", allow_redirects=False) as resp:
            assert resp.status == 200  # the session that changed it goes on
        async with two.get(a.url + "/settings", allow_redirects=False) as resp:
            assert resp.status == 303  # the other one is signed out


async def test_a_weak_password_is_refused_with_the_reason(node_factory) -> None:
    a = await node_factory("Acme")
    async with aiohttp.ClientSession(cookie_jar=_jar()) as http:
        token = await _csrf(http, a.extra["password_link"])
        for bad, says in (("short", "at least 12"), ("aaaaaaaaaaaaaaa", "too easy"),
                          (a.extra["admin_email"], "must not be your e-mail")):
            async with http.post(a.extra["password_link"], data={"csrf": token, "password": bad,
                                                                 "password_again": bad}) as resp:
                assert resp.status == 400 and says in await resp.text()
        hashed = await a.node.db.read(lambda conn: conn.execute("SELECT password_hash FROM users").fetchone()[0])
        assert hashed is None
        await _set_password(http, a.extra["password_link"])
        hashed = await a.node.db.read(lambda conn: conn.execute("SELECT password_hash FROM users").fetchone()[0])
        assert hashed.startswith("$argon2id$")
