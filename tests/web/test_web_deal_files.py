"""Files on the deal pages, through a real browser and raw HTTP against a real node:
documents uploaded and downloaded back byte for byte (refused when too large, of a kind
not allowed, or not what their name says, and cut short: nothing left behind), and a
CSV import of 5,000 contacts with its progress, then an export."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_web_deals import look, workflow
from web_kit import choose_password, new_page

LIMIT = 256 * 1024

# Records what the progress bar showed, in sessionStorage (which outlives the reloads): its
# value and maximum as each page with a bar was parsed, and every value the page's script
# gives it afterwards.
BAR_RECORDER = """
(() => {
  const keep = (bar, value) => {
    const seen = JSON.parse(sessionStorage.getItem("bar-values") || "[]");
    seen.push({ value: Number(value), max: Number(bar.max) });
    sessionStorage.setItem("bar-values", JSON.stringify(seen));
  };
  const own = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, "value");
  Object.defineProperty(HTMLProgressElement.prototype, "value", {
    get() { return own.get.call(this); },
    set(value) { keep(this, value); own.set.call(this, value); },
  });
  document.addEventListener("DOMContentLoaded", () => {
    const bar = document.getElementById("import-bar");
    if (bar) keep(bar, bar.value);
  });
})();
"""


async def bar_values(page: Any) -> list[dict[str, float]]:
    """What BAR_RECORDER saw: ``{"value", "max"}`` for each showing of the bar, in order."""
    return list(json.loads(await page.evaluate("sessionStorage.getItem('bar-values') || '[]'")))


def pdf(size: int, seed: int = 1) -> bytes:
    body = bytes((i * 7919 + seed) % 251 for i in range(size))
    return b"%PDF-1.7\n" + body + b"\n%%EOF\n"


async def downloaded(download: Any) -> bytes:
    return await asyncio.to_thread(Path(await download.path()).read_bytes)


async def stored_files(a: Any) -> list[Path]:
    folder = a.config.documents_dir
    return sorted(folder.iterdir()) if folder.is_dir() else []


async def count(a: Any, table: str) -> int:
    return await a.node.db.read(lambda conn: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def session_of(page: Any, a: Any) -> aiohttp.ClientSession:
    """An HTTP client with the browser's session cookie."""
    jar = aiohttp.CookieJar(unsafe=True)
    http = aiohttp.ClientSession(cookie_jar=jar)
    for cookie in await page.context.cookies():
        jar.update_cookies({cookie["name"]: cookie["value"]}, response_url=aiohttp.client.URL(a.url))
    return http


async def test_documents_upload_download_and_refusals(node_factory, browser, tmp_path) -> None:
    a = await node_factory("Acme", max_upload_bytes=LIMIT)
    wf = await workflow(a)
    deal = (await a.api("POST", "/api/v1/deals", {"title": "Refinance", "workflow_id": wf["id"],
                                                  "stage_id": wf["stages"][0]["id"]}, expect=201))["deal"]
    other = (await a.api("POST", "/api/v1/deals", {"title": "Other", "workflow_id": wf["id"],
                                                   "stage_id": wf["stages"][0]["id"]}, expect=201))["deal"]
    page = await new_page(browser)
    await choose_password(page, a.extra["password_link"])
    await page.goto(a.url + f"/deals/{deal['id']}")

    # a PDF goes up and comes back byte for byte, as an attachment
    original = pdf(200_000)
    (tmp_path / "credit guide.pdf").write_bytes(original)
    await page.get_by_label("Label (optional)").fill("Credit guide")
    await page.get_by_label("File").set_input_files(tmp_path / "credit guide.pdf")
    await page.get_by_role("button", name="Upload").click()
    await page.wait_for_url(re.compile(r".*#documents$"))
    assert "credit guide.pdf is uploaded." in await page.locator(".flash").inner_text()
    link = page.get_by_role("link", name="credit guide.pdf")
    async with page.expect_download() as info:
        await link.click()
    download = await info.value
    assert download.suggested_filename == "credit guide.pdf"
    assert await downloaded(download) == original
    await look(page, "deal-documents")

    # kept once, by content, private to the node
    files = await stored_files(a)
    assert [f.name for f in files] == [__import__("hashlib").sha256(original).hexdigest()]
    assert stat.S_IMODE(os.stat(a.config.documents_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    await page.get_by_label("File").set_input_files({"name": "same.pdf", "mimeType": "application/pdf",
                                                     "buffer": original})
    await page.get_by_role("button", name="Upload").click()
    await page.wait_for_url(re.compile(r".*#documents$"))
    assert len(await stored_files(a)) == 1 and await count(a, "documents") == 2

    # refused: too large, a kind not allowed, a file that is not what its name says
    refusals = [
        ({"name": "big.pdf", "mimeType": "application/pdf", "buffer": pdf(LIMIT + 10)},
         "The file must be smaller than 256 KB", 413),
        ({"name": "tool.exe", "mimeType": "application/pdf", "buffer": b"MZ\x90\x00" * 100},
         "The file must be a PDF, PNG, JPEG", 400),
        ({"name": "invoice.pdf", "mimeType": "application/pdf", "buffer": b"MZ\x90\x00" * 100},
         "The file is not a PDF, whatever its name says", 400),
        ({"name": "notes.docx", "mimeType": "application/octet-stream", "buffer": b"PK\x03\x04" + b"x" * 100},
         "The file is not a Word document", 400),
        ({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello\x00world"},
         "not plain UTF-8 text", 400),
    ]
    for shot, (file, message, status) in enumerate(refusals):
        async with page.expect_response(re.compile(r".*/documents\?csrf=.*")) as answer:
            await page.get_by_label("File").set_input_files(file)
            await page.get_by_role("button", name="Upload").click()
        assert (await answer.value).status == status
        assert message in await page.locator(".error-summary").inner_text(), file["name"]
        assert await page.locator("#f-file").get_attribute("aria-invalid") == "true"
        if shot == 0:
            await look(page, "deal-upload-refused")
    assert len(await stored_files(a)) == 1 and await count(a, "documents") == 2

    # raw HTTP: the page's token is needed; a body cut short leaves nothing; headers of a download
    http = await session_of(page, a)
    try:
        csrf = re.search(r'documents\?csrf=([^"]+)"', await page.content()).group(1)
        form = aiohttp.FormData()
        form.add_field("file", pdf(1000, 2), filename="x.pdf", content_type="application/pdf")
        async with http.post(a.url + f"/deals/{deal['id']}/documents", data=form) as resp:
            assert resp.status == 403 and "csrf_failed" in await resp.text()
        await cut_short(a, http, f"/deals/{deal['id']}/documents?csrf={csrf}")
        doc_id = re.search(r'/documents/(doc_[a-z0-9]+)"', await page.content()).group(1)
        async with http.get(a.url + f"/deals/{deal['id']}/documents/{doc_id}") as resp:
            assert resp.status == 200 and await resp.read() == original
            assert resp.headers["Content-Type"] == "application/pdf"
            assert resp.headers["Content-Disposition"].startswith('attachment; filename="credit guide.pdf"')
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
        async with http.get(a.url + f"/deals/{other['id']}/documents/{doc_id}",
                            headers={"Accept": "text/html"}) as resp:
            assert resp.status == 404 and "not_found" in await resp.text()
    finally:
        await http.close()
    assert len(await stored_files(a)) == 1 and await count(a, "documents") == 2
    # metadata recorded through the API only: listed, not downloadable
    await a.api("POST", f"/api/v1/deals/{deal['id']}/documents",
                {"name": "elsewhere.pdf", "size_bytes": 10, "sha256": "ab" * 32}, expect=201)
    await page.reload()
    assert "elsewhere.pdf (not held here)" in await page.locator("#documents").inner_text()


async def cut_short(a: Any, http: aiohttp.ClientSession, path: str) -> None:
    """Send an upload's head and part of its body, then hang up: no part file stays."""
    cookie = "; ".join(f"{c.key}={c.value}" for c in http.cookie_jar)
    boundary = "cutshortboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"half.pdf\"\r\n"
            f"Content-Type: application/pdf\r\n\r\n").encode()
    host, port = a.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {cookie}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 200000\r\n\r\n").encode()
    writer.write(request + head + pdf(50_000, 3))
    await writer.drain()
    await asyncio.sleep(0.5)
    assert any(p.name.startswith(".part-") for p in await stored_files(a))  # it was arriving
    writer.close()
    await writer.wait_closed()
    for _ in range(50):
        if not any(p.name.startswith(".part-") for p in await stored_files(a)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"a part file stayed: {await stored_files(a)}")


def contacts_csv(n: int) -> bytes:
    rows = ["first_name,last_name,email,phone"]
    rows += [f"Client{i},Number{i},client{i}@example.com,+61 400 {i:06d}" for i in range(n)]
    return ("\n".join(rows) + "\n").encode()


async def test_csv_import_of_5000_contacts_shows_progress_and_finishes_then_exports(node_factory, browser) -> None:
    a = await node_factory("Acme")
    page = await new_page(browser)
    await choose_password(page, a.extra["password_link"])
    await page.goto(a.url + "/deals")
    await page.get_by_role("link", name="Import", exact=True).click()
    await look(page, "csv-import")

    await page.get_by_role("radio", name="Contacts").check()
    await page.get_by_label("CSV file").set_input_files({"name": "clients.csv", "mimeType": "text/csv",
                                                         "buffer": contacts_csv(5000)})
    # every value the page's script gives the bar, kept across the reload on the outcome
    await page.add_init_script(BAR_RECORDER)
    await page.get_by_role("button", name="Import").click()
    await page.wait_for_url(re.compile(r".*/deals/import/[0-9a-f]{32}$"))
    bar = page.locator("progress#import-bar")
    await page.get_by_text("5,000 contacts imported.").wait_for(timeout=60_000)
    # finished: the outcome replaces the bar (a full bar above it said nothing more)
    assert await bar.count() == 0 and await page.get_by_label("Progress").count() == 0
    assert await page.locator("#import-status.outcome-done").inner_text() == "5,000 contacts imported."
    assert await count(a, "contacts") == 5000
    # before that, the bar was shown part-way: a value below its maximum
    shown = await bar_values(page)
    assert shown, "the import finished without the progress bar ever being shown"
    assert any(v["value"] < v["max"] for v in shown), shown
    await look(page, "csv-import-done")

    # a file with a wrong row: nothing is imported, the row is named
    bad = contacts_csv(3).replace(b"client1@example.com", b"not-an-email")
    await page.goto(a.url + "/deals/import")
    await page.get_by_label("CSV file").set_input_files({"name": "bad.csv", "mimeType": "text/csv", "buffer": bad})
    await page.get_by_role("button", name="Import").click()
    await page.get_by_role("heading", name="Nothing was imported").wait_for()
    row = page.locator(".errors-table tbody tr")
    assert [await c.inner_text() for c in await row.first.locator("td").all()][:2] == ["3", "email"]
    assert await count(a, "contacts") == 5000
    assert await bar.count() == 0 and "1 problem found" in await page.locator("#import-status").inner_text()
    await look(page, "csv-import-refused")

    # export: the contacts come back as a CSV download
    await page.get_by_role("link", name="Export", exact=True).first.click()
    await look(page, "csv-export")
    async with page.expect_download() as info:
        await page.get_by_role("link", name="All contacts").click()
    text = (await downloaded(await info.value)).decode("utf-8")
    lines = text.strip().splitlines()
    assert len(lines) == 5001 and "client4999@example.com" in text
    async with page.expect_download() as info:
        await page.get_by_role("link", name="All deals").click()
    assert (await downloaded(await info.value)).startswith(b"id,title")


@pytest.mark.slow
async def test_a_long_import_shows_its_progress_moving(node_factory, browser) -> None:
    """60,000 contacts take long enough to watch: the page's bar moves (kept current by
    its script from the progress endpoint) and the page ends on the outcome by itself."""
    a = await node_factory("Acme")
    page = await new_page(browser)
    await choose_password(page, a.extra["password_link"])
    await page.goto(a.url + "/deals/import")
    await page.get_by_label("CSV file").set_input_files({"name": "many.csv", "mimeType": "text/csv",
                                                         "buffer": contacts_csv(60_000)})
    # every value the page's script gives the bar, kept across the reload on the outcome
    await page.add_init_script(BAR_RECORDER)
    await page.get_by_role("button", name="Import").click()
    await page.wait_for_url(re.compile(r".*/deals/import/[0-9a-f]{32}$"))
    # not done when the page opened: the bar as the page was parsed (the script may have
    # moved it, and the status, on by the time they are read here)
    opened = (await bar_values(page))[0]
    assert opened["value"] < opened["max"], opened
    first = opened["value"]
    status = await page.locator("#import-status").inner_text()
    assert status.startswith(("Checking the rows", "Every row passed: writing 60,000")), status
    # its look (axe, screenshots) in a second tab without the page's script, as a browser
    # without JavaScript sees it: the script reloads the page when the import ends, which
    # on a fast machine came in the middle of the check
    still = await page.context.new_page()
    aborted: list[str] = []

    async def no_script(route: Any) -> None:
        aborted.append(route.request.url)
        await route.abort()

    # the script's address carries a version (csv_import.js?v=...), which a glob ending in
    # ".js" never matched: the script ran in this tab too and reloaded it mid-check
    await still.route(re.compile(r".*/csv_import\.js(\?.*)?$"), no_script)
    await still.goto(page.url, wait_until="networkidle")
    assert aborted, "the page's script was not kept out of the second tab"
    await look(still, "csv-import-progress")
    await still.close()
    # the script moves the bar without a reload, then reloads on the outcome (on a fast
    # machine the last move and the reload come together, so the values are read afterwards)
    await page.get_by_text("60,000 contacts imported.").wait_for(timeout=120_000)
    moves = [v["value"] for v in await bar_values(page)]
    assert any(value > first for value in moves), moves
    assert await count(a, "contacts") == 60_000
