"""The deal pages' guards, through a real browser and raw HTTP: a broker does CRM work but
not what the API keeps for admins (CSV import and export, workflows); bad input (unknown
or another node's ids, malformed values, a stage of another workflow, no CSRF token) gets
an error page with a stable code and writes nothing; and the board stays fast with many
deals in a stage."""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

import aiohttp
import pytest
from test_web_deal_files import count, session_of
from test_web_deals import look, workflow
from web_kit import choose_password, new_page

ADMIN_PAGES = ["/deals/import", "/deals/export", "/deals/export/contacts.csv", "/deals/export/deals.csv",
               "/deals/workflows/new", "/deals/import/0123456789abcdef0123456789abcdef"]


async def test_a_broker_works_deals_but_not_admin_pages(node_factory, browser) -> None:
    a = await node_factory("Acme")
    wf = await workflow(a)
    bo = await a.api("POST", "/api/v1/users", {"email": "bo@acme.example", "name": "Bo Broker", "role": "broker"})
    page = await new_page(browser)
    await choose_password(page, bo["password_link"])
    await page.goto(a.url + "/deals")
    nav = page.get_by_role("navigation", name="Deals and contacts")
    assert await nav.get_by_role("link", name="Import").count() == 0
    assert await nav.get_by_role("link", name="Export").count() == 0
    assert await page.get_by_role("link", name="New workflow").count() == 0
    await look(page, "deals-board-broker", phone_too=False)

    # CRM work: a deal through the form, moved, and a note
    await page.get_by_role("link", name="New deal").click()
    await page.get_by_label("Title").fill("Bo's deal")
    await page.get_by_role("button", name="Create deal").click()
    await page.wait_for_url(re.compile(r".*/deals/deal_[a-z0-9]+$"))
    deal_id = page.url.rsplit("/", 1)[1]
    await page.get_by_label("Move to stage").select_option(label="Application")
    await page.get_by_role("button", name="Move", exact=True).click()
    await page.wait_for_load_state()
    assert (await a.api("GET", f"/api/v1/deals/{deal_id}"))["deal"]["stage_id"] == wf["stages"][1]["id"]
    assert (await a.api("GET", f"/api/v1/deals/{deal_id}"))["deal"]["owner_user_id"] == bo["user"]["id"]

    # the admin's pages: 403 by page and by URL, GET and POST
    for path in ADMIN_PAGES:
        await page.goto(a.url + path)
        assert await page.get_by_role("heading", level=1).inner_text() == "Not allowed", path
    await look(page, "deals-admin-page-broker", phone_too=False)
    http = await session_of(page, a)
    try:
        async with http.get(a.url + "/deals") as resp:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await resp.text()).group(1)
        for path in ADMIN_PAGES:
            async with http.get(a.url + path) as resp:
                assert resp.status == 403 and "forbidden" in await resp.text(), path
        form = aiohttp.FormData()
        form.add_field("file", b"first_name\nEve\n", filename="c.csv", content_type="text/csv")
        async with http.post(a.url + f"/deals/import?csrf={csrf}", data=form) as resp:
            assert resp.status == 403
        async with http.post(a.url + "/deals/workflows/new", data={"csrf": csrf, "name": "X", "stages": "A"}) as resp:
            assert resp.status == 403
    finally:
        await http.close()
    assert await count(a, "contacts") == 0 and await count(a, "workflows") == 1


async def test_bad_input_gets_an_error_page_and_writes_nothing(node_factory, browser) -> None:
    a = await node_factory("Acme")
    b = await node_factory("Beta")
    home = await workflow(a)
    other = await workflow(a, "Insurance", ("Quote", "Bound"))
    deal = (await a.api("POST", "/api/v1/deals", {"title": "Refinance", "workflow_id": home["id"],
                                                  "stage_id": home["stages"][0]["id"]}, expect=201))["deal"]
    b_wf = await workflow(b)
    b_deal = (await b.api("POST", "/api/v1/deals", {"title": "Theirs", "workflow_id": b_wf["id"],
                                                    "stage_id": b_wf["stages"][0]["id"]}, expect=201))["deal"]
    b_contact = (await b.api("POST", "/api/v1/contacts", {"first_name": "Their"}, expect=201))["contact"]
    page = await new_page(browser)
    await choose_password(page, a.extra["password_link"])
    tables = ("deals", "deal_contacts", "deal_moves", "contacts", "notes", "documents", "workflows", "stages")
    before = {t: await count(a, t) for t in tables}

    # pages a browser opens: a clear page, the right status and code
    for path, status, code in [
        (f"/deals/{b_deal['id']}", 404, "not_found"),
        ("/deals/no-such-deal", 404, "not_found"),
        (f"/deals/{b_deal['id']}/edit", 404, "not_found"),
        (f"/contacts/{b_contact['id']}", 404, "not_found"),
        (f"/contacts/{b_contact['id']}/edit", 404, "not_found"),
        ("/deals?workflow=Nope", 404, "not_found"),
        ("/deals?workflow=Home%20loans&stage=Nope", 404, "not_found"),
        ("/deals?workflow=Home%20loans&stage=Lead&after=yesterday", 400, "invalid"),
        ("/contacts?offset=lots", 400, "invalid"),
        (f"/deals/{deal['id']}/documents/doc_nope", 404, "not_found"),
        ("/deals/import/not-an-import", 404, "not_found"),
        (f"/contacts/new?deal={b_deal['id']}", 404, "not_found"),
    ]:
        response = await page.goto(a.url + path)
        assert response is not None and response.status == status, path
        text = await page.locator("main").inner_text()
        assert f"Error code: {code}" in text, path
        assert "deal_" not in text and "ct_" not in text, (path, text)  # words, not ids
    await look(page, "deal-not-found", phone_too=False)

    http = await session_of(page, a)
    try:
        async with http.get(a.url + "/deals") as resp:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await resp.text()).group(1)

        async def post(path: str, data: dict[str, str], status: int, says: str) -> None:
            async with http.post(a.url + path, data=data, allow_redirects=False) as resp:
                text = await resp.text()
                assert resp.status == status and says in text, (path, data, resp.status, re.sub(r"(?s).*<main[^>]*>|</main>.*", "", text))

        move = f"/deals/{deal['id']}/move"
        await post(move, {"stage_id": home["stages"][1]["id"]}, 403, "csrf_failed")
        await post(move, {"csrf": csrf, "stage_id": other["stages"][0]["id"]}, 400, "invalid")  # another workflow's
        await post(move, {"csrf": csrf, "stage_id": "not a stage!"}, 400, "invalid")
        await post(move, {"csrf": csrf, "stage_id": b_wf["stages"][1]["id"]}, 404, "not_found")
        await post(move, {"csrf": csrf}, 400, "Choose the stage")
        await post(f"/deals/{b_deal['id']}/move", {"csrf": csrf, "stage_id": home["stages"][1]["id"]}, 404, "not_found")
        await post(f"/deals/{deal['id']}/notes", {"csrf": csrf, "body": "  "}, 400, "Enter the note")
        await post(f"/deals/{deal['id']}/notes", {"csrf": csrf, "body": "x" * 8001}, 400, "8,000 characters")
        await post(f"/deals/{deal['id']}/notes", {"csrf": csrf, "body": "bell\x07"}, 400, "invalid")
        await post(f"/deals/{b_deal['id']}/notes", {"csrf": csrf, "body": "hello"}, 404, "not_found")
        await post(f"/deals/{deal['id']}/contacts", {"csrf": csrf, "contact_id": b_contact["id"]}, 404, "not_found")
        await post(f"/deals/{deal['id']}/contacts/{b_contact['id']}/remove", {"csrf": csrf}, 404, "not_found")
        await post("/deals/new", {"csrf": csrf, "workflow_id": home["id"], "stage_id": other["stages"][0]["id"],
                                  "title": "Wrong stage"}, 400, "Choose a stage of the workflow you chose")
        await post("/deals/new", {"csrf": csrf, "workflow_id": home["id"], "stage_id": home["stages"][0]["id"],
                                  "title": "Ghost owner", "owner_user_id": "user_nobody"}, 400,
                   "Choose an active user as the owner")
        await post("/deals/new", {"csrf": csrf, "workflow_id": home["id"], "stage_id": home["stages"][0]["id"],
                                  "title": "Ghost client", "contact_ids": b_contact["id"]}, 400,
                   "A contact you chose is no longer on file")
        await post("/deals/new", {"csrf": csrf, "workflow_id": home["id"], "stage_id": home["stages"][0]["id"],
                                  "title": "With a bad client", "client_first_name": "Al",
                                  "client_email": "nope"}, 400, "e-mail address like name@example.com")
        await post(f"/deals/{deal['id']}/edit", {"csrf": csrf, "title": "", "amount": "1"}, 400,
                   "Enter a title for the deal")
        await post("/contacts/new", {"csrf": csrf, "first_name": "Al", "date_of_birth": "1990-02-31"}, 400,
                   "Enter the date of birth as year-month-day")
        await post("/deals/workflows/new", {"csrf": csrf, "name": "Home loans", "stages": "A\nB"}, 400,
                   "already exists")
        await post("/deals/workflows/new", {"csrf": csrf, "name": "Twice", "stages": "A\na"}, 400, "appears twice")
        await post("/deals/workflows/new", {"csrf": csrf, "name": "Won?", "stages": "A\nB", "won": "C"}, 400,
                   "must be one of the stages above")
    finally:
        await http.close()
    assert {t: await count(a, t) for t in tables} == before
    assert (await a.api("GET", f"/api/v1/deals/{deal['id']}"))["deal"]["stage_id"] == home["stages"][0]["id"]
    # not signed in: pages go to sign-in, forms are refused
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(a.url + f"/deals/{deal['id']}", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=")
        async with anonymous.post(a.url + f"/deals/{deal['id']}/move", data={"stage_id": "x"}) as resp:
            assert resp.status == 401


async def insert_deals(a: Any, wf: dict[str, Any], n: int, *, crowded: int) -> None:
    """``n`` deals with a contact each, ``crowded`` of them in the first stage: written
    straight to the tables (setting up a benchmark, not what is tested)."""
    stages = [s["id"] for s in wf["stages"]]

    def write(conn: Any) -> None:
        ts = [f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i % 59:02d}Z" for i in range(n)]
        conn.executemany("INSERT INTO contacts (id, first_name, last_name, email, created_at, updated_at)"
                         " VALUES (?, ?, ?, ?, ?, ?)",
                         ((f"ct_b{i}", f"First{i}", f"Last{i}", f"p{i}@example.com", ts[i], ts[i]) for i in range(n)))
        conn.executemany("INSERT INTO deals (id, title, amount, currency, workflow_id, stage_id, origin, created_at,"
                         " updated_at) VALUES (?, ?, '250000', 'AUD', ?, ?, 'local', ?, ?)",
                         ((f"deal_b{i}", f"Deal {i}", wf["id"], stages[0] if i < crowded else stages[1 + i % 3],
                           ts[i], ts[i]) for i in range(n)))
        conn.executemany("INSERT INTO deal_contacts VALUES (?, ?, 'primary', 0)",
                         ((f"deal_b{i}", f"ct_b{i}") for i in range(n)))

    await a.node.db.write(write)


async def p95_ms(http: aiohttp.ClientSession, url: str, runs: int = 40) -> float:
    async with http.get(url) as resp:  # once first: templates compile on first use
        await resp.read()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        async with http.get(url) as resp:
            assert resp.status == 200, url
            await resp.read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.quantiles(times, n=20)[-1]


async def test_a_crowded_stage_shows_a_page_of_cards_and_the_rest_a_link_away(node_factory, browser) -> None:
    a = await node_factory("Acme")
    wf = await workflow(a)
    await insert_deals(a, wf, 3000, crowded=2000)
    page = await new_page(browser)
    await choose_password(page, a.extra["password_link"])
    await page.goto(a.url + "/deals")
    lead = page.locator(".column").first
    assert await lead.locator("h2").text_content() == "Lead, 1,000+ deals"  # counted no further
    assert await page.locator(".column").nth(1).locator("h2").text_content() == "Application, 333 deals"
    assert await lead.locator(".deal-card").count() == 20
    assert await page.locator(".column").nth(1).get_by_role("link", name="Show more of Application (313)").count() == 1
    await lead.get_by_role("link", name="Show more of Lead").click()
    await page.wait_for_url(re.compile(r".*stage=Lead&after=.*"))
    assert await page.locator(".deal-card").count() == 50
    assert "2,000 deals in Lead, the most recently changed first" in await page.locator("main").inner_text()
    await look(page, "deals-stage")
    # page by page, each deal once, newest first, to the end of the stage
    seen = [await t.inner_text() for t in await page.locator(".deal-card h3").all()]
    while await page.get_by_role("link", name="Next 50").count():
        await page.get_by_role("link", name="Next 50").click()
        seen += [await t.inner_text() for t in await page.locator(".deal-card h3").all()]
    assert len(seen) == len(set(seen)) == 2000 - 20
    response = await page.goto(a.url + "/deals?workflow=Home%20loans&stage=Lead&after=1;DROP")
    assert response is not None and response.status == 400


@pytest.mark.slow
async def test_the_board_and_deal_page_stay_fast_with_100000_deals(node_factory, browser) -> None:
    a = await node_factory("Acme")
    wf = await workflow(a)
    await insert_deals(a, wf, 100_000, crowded=50_000)
    page = await new_page(browser)
    await choose_password(page, a.extra["password_link"])
    http = await session_of(page, a)
    try:
        board = await p95_ms(http, a.url + "/deals")
        async with http.get(a.url + "/deals?workflow=Home%20loans&stage=Lead") as resp:  # a deep page
            cursor = re.findall(r'after=([^"&]+)', await resp.text())[-1]
        deep = await p95_ms(http, a.url + f"/deals?workflow=Home%20loans&stage=Lead&after={cursor}")
        deal = await p95_ms(http, a.url + "/deals/deal_b77777")
        search = await p95_ms(http, a.url + "/search?q=Last99999", runs=10)
    finally:
        await http.close()
    print(f"p95 ms: board {board:.1f}, a page of a 50,000-deal stage {deep:.1f}, deal {deal:.1f}, "
          f"search {search:.1f}")
    assert board < 100 and deep < 100 and deal < 100
