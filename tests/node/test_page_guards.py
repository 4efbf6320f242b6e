"""The console's guards, by their behaviour over raw HTTP (no browser): which pages only an
admin may use (an explicit list here, the policy, not each route's own flag), the
session (idle and absolute expiry, users no longer active), CSRF on every POST (an
upload's in its query string), and the API's bearer tokens: their refusals in so many
words, those of users no longer active, and their last use as an admin sees it. Each
refusal changes nothing."""

from __future__ import annotations

import re
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import aiohttp
from test_bad_input_core import snapshot
from web_kit import PASSWORD

from node.base.clock import FakeClock
from node.base.when import when
from node.web.site import page_tables
from protocol.models import format_ts

#: What only an admin may open or send: the node's users, tokens, outbox, keys and mail,
#: connecting and the settings of connections, workflows, and CSV import and export.
ADMIN_ONLY_PAGES = {
    "GET /deals/import", "POST /deals/import", "GET /deals/import/{id}", "GET /deals/import/{id}/progress",
    "GET /deals/export", "GET /deals/export/contacts.csv", "GET /deals/export/deals.csv",
    "GET /deals/workflows/new", "POST /deals/workflows/new",
    "GET /connections/invite", "POST /connections/invite", "POST /connections/invitations/{id}/send",
    "POST /connections/invitations/{id}/revoke", "GET /connections/connect", "GET /connections/request",
    "POST /connections/connect/check", "POST /connections/connect", "POST /connections/request/check",
    "POST /connections/request", "POST /connections/{id}/inbound", "POST /connections/{id}/outbound",
    "POST /connections/{id}/accept", "POST /connections/{id}/decline", "GET /connections/{id}/disconnect",
    "POST /connections/{id}/disconnect",
    "GET /admin", "GET /admin/users", "GET /admin/users/new", "POST /admin/users",
    "POST /admin/users/{id}/deactivate", "POST /admin/users/{id}/reactivate", "POST /admin/users/{id}/reset",
    "POST /admin/users/{id}/unlock", "GET /admin/tokens", "POST /admin/tokens", "POST /admin/tokens/{id}/revoke",
    "GET /admin/outbox", "POST /admin/outbox/{seq:\\d{1,18}}/retry", "POST /admin/outbox/receipts",
    "GET /admin/keys/rotate", "POST /admin/keys/rotate", "GET /admin/mail", "POST /admin/mail/test",
    # the partner portal's setup, its partners, and enterprise partners (issue 13)
    "GET /admin/partner-portal", "POST /admin/partner-portal", "GET /admin/partners", "GET /admin/partners/new",
    "POST /admin/partners", "GET /admin/partners/{id}/edit", "POST /admin/partners/{id}",
    "GET /admin/partners/{id}/activity", "POST /admin/partners/{id}/invite", "POST /admin/partners/{id}/remove",
    "GET /admin/enterprise", "POST /admin/enterprise/{id}", "GET /admin/enterprise/{id}/partners",
    "POST /admin/enterprise/{id}/partners",
    # the client portal's organisation settings: jurisdiction and SMS credits (issue 14)
    "GET /admin/portal", "POST /admin/portal/jurisdiction", "POST /admin/portal/credits",
}  # fmt: skip
#: Pages a broker uses every day (a sample: each must open for one).
BROKER_PAGES = ("/", "/deals", "/contacts", "/connections", "/referrals", "/settings")


def jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)


async def csrf(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as resp:
        found = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
        assert found, (url, resp.status)
        return found.group(1)


async def set_password(http: aiohttp.ClientSession, link: str) -> None:
    token = await csrf(http, link)
    async with http.post(link, data={"csrf": token, "password": PASSWORD, "password_again": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()


async def sign_in(http: aiohttp.ClientSession, url: str, email: str) -> int:
    token = await csrf(http, url + "/login")
    async with http.post(url + "/login", data={"csrf": token, "email": email, "password": PASSWORD},
                         allow_redirects=False) as resp:
        return resp.status


async def broker_user(a: Any, email: str = "bree@acme.example") -> tuple[str, str]:
    made = await a.api("POST", "/api/v1/users", {"email": email, "name": "Bree", "role": "broker"}, expect=201)
    return made["user"]["id"], made["password_link"]


def concrete(path: str) -> str:
    return re.sub(r"\{seq[^}]*\}\}", "1", path).replace("{id}", "x")


async def test_the_admin_only_pages_are_those_of_the_policy_and_a_broker_gets_403(node_factory: Any) -> None:
    a = await node_factory("Acme")
    declared = {f"{r.method} {r.path}" for table in page_tables() for r in table.routes if r.admin_only}
    assert declared == ADMIN_ONLY_PAGES, "admin-only pages differ from the policy written here"
    _, link = await broker_user(a)
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        await set_password(http, link)
        token = await csrf(http, a.url + "/settings")
        before = await snapshot(a)
        for route in sorted(ADMIN_ONLY_PAGES):
            method, path = route.split(" ", 1)
            url = a.url + concrete(path)
            async with http.request(method, url, data={"csrf": token} if method == "POST" else None,
                                    params={"csrf": token} if method == "POST" else None,
                                    allow_redirects=False) as resp:
                text = await resp.text()
                assert resp.status == 403 and "<code>forbidden</code>" in text, (route, resp.status, text[:200])
                assert '<p class="lead">This page is for admins only.</p>' in text and "Details:" not in text
        for path in BROKER_PAGES:
            async with http.get(a.url + path, allow_redirects=False) as resp:
                assert resp.status == 200, (path, resp.status)
        assert await snapshot(a) | {"web_sessions": None} == before | {"web_sessions": None}
    # the admin opens the same pages
    async with aiohttp.ClientSession(cookie_jar=jar()) as admin:
        await set_password(admin, a.extra["password_link"])
        for path in ("/admin", "/admin/users", "/admin/tokens", "/connections/invite", "/deals/import"):
            async with admin.get(a.url + path, allow_redirects=False) as resp:
                assert resp.status == 200, (path, resp.status)


async def test_without_a_session_pages_go_to_sign_in_and_posts_are_refused(node_factory: Any) -> None:
    a = await node_factory("Acme")
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        async with http.get(a.url + "/deals?q=x", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/login?next=%2Fdeals%3Fq%3Dx"
        token = await csrf(http, a.url + "/login")  # a pre-sign-in token, valid for sign-in only
        before = await snapshot(a)
        async with http.post(a.url + "/admin/users", data={"csrf": token, "email": "m@x.example", "name": "M",
                                                           "role": "admin"}, allow_redirects=False) as resp:
            text = await resp.text()
            assert resp.status == 401 and "<code>unauthenticated</code>" in text
            assert '<p class="lead">Your session has ended. Sign in again.</p>' in text and "Details:" not in text
        assert await snapshot(a) == before
    # the pre-sign-in token's seed comes back in a cookie: kept up to 100 characters, past
    # that replaced by a new one
    async with aiohttp.ClientSession() as http:
        for seed, kept in (("A" * 100, True), ("A" * 101, False)):
            async with http.get(a.url + "/login", headers={"Cookie": f"rn_pre={seed}"}) as resp:
                assert resp.status == 200 and ("rn_pre" not in resp.cookies) == kept, len(seed)


async def test_every_post_needs_the_sessions_own_csrf_token(node_factory: Any) -> None:
    a = await node_factory("Acme")
    async with aiohttp.ClientSession(cookie_jar=jar()) as one, aiohttp.ClientSession(cookie_jar=jar()) as two:
        await set_password(one, a.extra["password_link"])
        assert await sign_in(two, a.url, a.extra["admin_email"]) == 303
        mine, theirs = await csrf(one, a.url + "/admin/users/new"), await csrf(two, a.url + "/admin/users/new")
        assert mine != theirs
        form = {"email": "new@acme.example", "name": "New", "role": "broker"}
        before = await snapshot(a)
        for token in (None, "", theirs, mine[:-1], mine + "A"):
            data = form if token is None else {**form, "csrf": token}
            async with one.post(a.url + "/admin/users", data=data, allow_redirects=False) as resp:
                text = await resp.text()
                assert resp.status == 403 and "<code>csrf_failed</code>" in text, token
                assert "This form has expired or did not come from this site. Go back, reload the page and " \
                       "send it again." in text
        assert await snapshot(a) == before
        async with one.post(a.url + "/admin/users", data={**form, "csrf": mine}, allow_redirects=False) as resp:
            assert resp.status in (200, 303), await resp.text()
        users = (await a.api("GET", "/api/v1/users"))["users"]
        assert "new@acme.example" in {u["email"] for u in users}
        # a form that is not text is refused as invalid, whatever its token
        async with one.post(a.url + "/admin/users", data={**form, "name": "New\x00", "csrf": mine},
                            allow_redirects=False) as resp:
            assert resp.status == 400 and "<code>invalid</code>" in await resp.text()
        # the token is the session's: signed in again in the same browser, the page has another
        assert await sign_in(one, a.url, a.extra["admin_email"]) == 303
        assert await csrf(one, a.url + "/admin/users/new") != mine


async def test_sessions_end_after_the_idle_time_and_the_absolute_lifetime(node_factory: Any) -> None:
    a = await node_factory("Acme", start=False, session_idle_s=600, session_absolute_s=3600)
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    await a.start(clock=clock)

    async def live(http: aiohttp.ClientSession) -> bool:
        async with http.get(a.url + "/settings", allow_redirects=False) as resp:
            return resp.status == 200

    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        await set_password(http, a.extra["password_link"])
        clock.advance(599)
        assert await live(http)  # within the idle time (and the use renews it)
        clock.advance(599)
        assert await live(http)
        clock.advance(601)
        assert not await live(http)  # idle too long
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        assert await sign_in(http, a.url, a.extra["admin_email"]) == 303
        for _ in range(6):
            clock.advance(590)
            assert await live(http)  # 3540 s, in use all along
        clock.advance(70)
        assert not await live(http)  # 3610 s: past the absolute lifetime
        assert await sign_in(http, a.url, a.extra["admin_email"]) == 303
        assert await live(http)


async def test_a_user_no_longer_active_loses_session_token_and_password_link(node_factory: Any) -> None:
    a = await node_factory("Acme")
    bree, link = await broker_user(a)
    token = (await a.api("POST", "/api/v1/tokens", {"user_id": bree, "label": "bree"}, expect=201))["token"]
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        await set_password(http, link)
        async with http.get(a.url + "/deals", allow_redirects=False) as resp:
            assert resp.status == 200
        assert "deals" in await a.api("GET", "/api/v1/deals", token=token, expect=200)
        await a.api("PATCH", f"/api/v1/users/{bree}", {"active": False})
        async with http.get(a.url + "/deals", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/login")
        error = await a.api("GET", "/api/v1/deals", token=token, expect=401)
        assert error["error"] == {"code": "unauthenticated", "message": "that token is unknown or revoked"}
        assert await sign_in(http, a.url, "bree@acme.example") == 401  # the form again, with an error
        async with http.get(a.url + "/deals", allow_redirects=False) as resp:
            assert resp.status == 303
    # a password link made before the deactivation does not work either
    cato, cato_link = await broker_user(a, "cato@acme.example")
    await a.api("PATCH", f"/api/v1/users/{cato}", {"active": False})
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        async with http.get(cato_link) as resp:
            assert "This link does not work" in await resp.text()


async def test_a_form_is_read_only_as_a_form_within_its_limits(node_factory: Any) -> None:
    a = await node_factory("Acme")
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        await set_password(http, a.extra["password_link"])
        token = await csrf(http, a.url + "/admin/users/new")
        before = await snapshot(a)

        async def send(body: bytes, kind: str = "application/x-www-form-urlencoded") -> tuple[int, str]:
            async with http.post(a.url + "/admin/users", data=body, headers={"Content-Type": kind},
                                 allow_redirects=False) as resp:
                return resp.status, await resp.text()

        form = f"csrf={token}&email=n%40acme.example&name=N&role=broker"
        status, text = await send(form.encode(), "application/json")
        assert status == 400 and "application/x-www-form-urlencoded" in text
        status, text = await send((form + "&note=" + "a" * 300_000).encode())
        assert status == 413, (status, text[:200])
        status, text = await send((form + "".join(f"&f{i}=x" for i in range(2001))).encode())
        assert status == 400 and "invalid" in text, (status, text[:200])
        status, text = await send((form + "&name=%ff").encode())
        assert status == 400 and "not valid UTF-8" in text, (status, text[:200])
        # one line of text per field (no control characters), in its value and in its name
        for extra, field in (("&name=A%0AB", "name"), ("&name=A%09B", "name"), ("&na%00me=x", "na")):
            status, text = await send((form + extra).encode())
            assert status == 400 and f"field &#39;{field}" in text, (extra, status, text[:300])
        assert await snapshot(a) == before


async def test_a_text_box_keeps_its_lines_and_tabs_and_a_blank_field_its_place(node_factory: Any) -> None:
    """A note's text box (a multi-line field) keeps line breaks (CR LF read as LF) and tabs,
    and still refuses other control characters; a blank field is read as blank, not dropped,
    so that the fields after it stay in their places (here the connection form's lists)."""
    a = await node_factory("Acme")
    contact = (await a.api("POST", "/api/v1/contacts", {"first_name": "Ann", "last_name": "Lee"}, expect=201))
    notes = f"{a.url}/contacts/{contact['contact']['id']}/notes"
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        await set_password(http, a.extra["password_link"])
        token = await csrf(http, a.url + "/contacts")
        body = urllib.parse.urlencode({"csrf": token, "body": "First line\r\nsecond\tline\nthird"})
        async with http.post(notes, data=body.encode(), allow_redirects=False,
                             headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
            assert resp.status == 303, await resp.text()
        before = await snapshot(a)
        for bad in ("bell\x07", "nul\x00", "escape\x1b[2J"):
            async with http.post(notes, data={"csrf": token, "body": bad}, allow_redirects=False) as resp:
                assert resp.status == 400 and "field &#39;body" in await resp.text(), bad
        assert await snapshot(a) == before
        # a blank value is a value: "body=" is an empty note (refused as such), not a missing field
        async with http.post(notes, data=f"csrf={token}&body=&body=late".encode(), allow_redirects=False,
                             headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
            assert resp.status == 400 and "Enter the note" in await resp.text()
    stored = await a.node.db.read(lambda conn: [r[0] for r in conn.execute(
        "SELECT body FROM notes WHERE contact_id = ? AND kind = 'user'", (contact["contact"]["id"],))])
    assert stored == ["First line\nsecond\tline\nthird"]


async def test_after_sign_in_next_stays_on_this_site(node_factory: Any) -> None:
    a = await node_factory("Acme")
    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        await set_password(http, a.extra["password_link"])
        for wanted, lands in (("/deals?q=1", "/deals?q=1"), ("//evil.example/x", "/"), ("/\\evil.example", "/"),
                              ("https://evil.example/", "/"), ("deals", "/")):
            token = await csrf(http, a.url + "/login")
            async with http.post(a.url + "/login", data={"csrf": token, "email": a.extra["admin_email"],
                                                         "password": PASSWORD, "next": wanted},
                                 allow_redirects=False) as resp:
                assert (resp.status, resp.headers["Location"]) == (303, lands), wanted


async def test_an_upload_needs_the_sessions_csrf_token_in_its_query_string(node_factory: Any) -> None:
    """A document upload is a multipart form that its page reads as it streams (``raw_body``):
    the CSRF token comes in the form's action, ``?csrf=``, and a token in the form itself
    is not looked at."""
    a = await node_factory("Acme")
    owner = (await a.api("GET", "/api/v1/users"))["users"][0]["id"]
    flow = {"name": "Home loans", "owner_user_id": owner, "stage_names": ["New"]}
    wf = (await a.api("POST", "/api/v1/workflows", flow, expect=201))["workflow"]
    made = {"title": "Refinance", "workflow_id": wf["id"], "stage_id": wf["stages"][0]["id"]}
    deal = (await a.api("POST", "/api/v1/deals", made, expect=201))["deal"]["id"]

    def form(csrf_field: str | None = None) -> aiohttp.FormData:
        data = aiohttp.FormData()
        if csrf_field is not None:
            data.add_field("csrf", csrf_field)
        data.add_field("label", "Settlement notes")
        data.add_field("file", b"Settlement on Friday.\n", filename="notes.txt", content_type="text/plain")
        return data

    async with aiohttp.ClientSession(cookie_jar=jar()) as http:
        await set_password(http, a.extra["password_link"])
        async with http.get(f"{a.url}/deals/{deal}") as resp:
            action = re.search(r'action="(/deals/[^"?]+/documents)\?csrf=([^"]+)"', await resp.text())
            assert action, resp.status
        upload, token = a.url + action.group(1), urllib.parse.unquote(action.group(2))
        before = await snapshot(a)
        for query, in_form in (({}, None), ({}, token), ({"csrf": token[:-1]}, None)):
            async with http.post(upload, params=query, data=form(in_form), allow_redirects=False) as resp:
                assert resp.status == 403 and "<code>csrf_failed</code>" in await resp.text(), (query, in_form)
        assert await snapshot(a) == before
        async with http.post(upload, params={"csrf": token}, data=form(), allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
    documents = (await a.api("GET", f"/api/v1/deals/{deal}/documents"))["documents"]
    assert [(d["name"], d["label"]) for d in documents] == [("notes.txt", "Settlement notes")]


async def test_the_apis_token_refusals_say_what_to_send(node_factory: Any) -> None:
    a = await node_factory("Acme")
    bree, _ = await broker_user(a)
    brokers = (await a.api("POST", "/api/v1/tokens", {"user_id": bree, "label": "bree"}, expect=201))["token"]
    assert a.session is not None
    send_one = "send 'Authorization: Bearer <token>'"
    for headers, status, error in (
        ({}, 401, {"code": "unauthenticated", "message": send_one}),
        ({"Authorization": f"Basic {a.token}"}, 401, {"code": "unauthenticated", "message": send_one}),
        ({"Authorization": "Bearer rnt_not-a-token"}, 401,
         {"code": "unauthenticated", "message": "that token is unknown or revoked"}),
        ({"Authorization": f"Bearer {brokers}"}, 403, {"code": "forbidden", "message": "this needs an admin"}),
    ):
        async with a.session.get(a.url + "/api/v1/users", headers=headers) as resp:
            assert (resp.status, (await resp.json())["error"]) == (status, error), headers


async def test_a_tokens_last_use_is_shown_to_admins_and_written_at_most_once_a_minute(node_factory: Any) -> None:
    a = await node_factory("Acme", start=False)
    clock = FakeClock(datetime(2026, 12, 3, 9, 0, 30, tzinfo=UTC))
    await a.start(clock=clock)
    token = (await a.api("POST", "/api/v1/tokens", {"label": "nightly export"}, expect=201))["token"]

    async with aiohttp.ClientSession(cookie_jar=jar()) as admin:
        await set_password(admin, a.extra["password_link"])

        async def last_used() -> str:
            async with admin.get(a.url + "/admin/tokens") as resp:
                row = re.search(r'<th scope="row">nightly export</th>.*?<td data-label="Last used">([^<]*)</td>',
                                await resp.text(), re.S)
                assert row, resp.status
                return row.group(1)

        def shown(moment: datetime) -> str:
            return when(format_ts(moment), a.config.zone)

        assert await last_used() == "Never"
        first = clock.now()
        await a.api("GET", "/api/v1/node", token=token)
        assert await last_used() == shown(first)
        clock.advance(45)  # the next minute on the clock, 45 s after the use written
        assert shown(clock.now()) != shown(first)
        await a.api("GET", "/api/v1/node", token=token)
        assert await last_used() == shown(first)  # not written again within the minute
        clock.advance(30)
        await a.api("GET", "/api/v1/node", token=token)
        assert await last_used() == shown(clock.now())
