"""The client portal's walls, through raw HTTP against a real node: a client reaches only
their own application (and the other applicants' when the broker allowed it), never
another deal, a console page or the API; client documents are sealed at rest and a flipped
stored byte is caught on download; SMS credits run out without losing the e-mail; a stage
change reaches the client."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from portal_kit import (
    SmsGateway,
    deal_with_applicants,
    node_settings,
    owner_id,
    passcode_of_mail,
    pdf,
    ready_to_share,
    share,
)
from web_kit import smtp_settings, text_of

from node.crm.errors import CrmError


class Client:
    """A client's HTTP session: its own cookie jar, as a browser keeps one."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.http.close()

    async def csrf(self, path: str) -> str:
        async with self.http.get(self.base + path) as answer:
            found = re.search(r'name="csrf" value="([^"]+)"', await answer.text())
        assert found, path
        return found.group(1)

    async def sign_in(self, email: str, code: str) -> None:
        token = await self.csrf("/client/sign-in")
        async with self.http.post(self.base + "/client/sign-in", data={"csrf": token, "email": email,
                                                                      "passcode": code}) as answer:
            assert answer.status == 200 and "/client/" in str(answer.url), await answer.text()

    def sid(self) -> str:
        return next(c.value for c in self.http.cookie_jar if c.key == "rn_client")

    async def get(self, path: str, **kw: Any) -> tuple[int, bytes, aiohttp.ClientResponse]:
        async with self.http.get(self.base + path, allow_redirects=False, **kw) as answer:
            return answer.status, await answer.read(), answer

    async def upload(self, request_id: str, name: str, data: bytes) -> tuple[int, str]:
        token = await self.csrf("/client/dashboard")
        form = aiohttp.FormData()
        form.add_field("file", data, filename=name, content_type="application/pdf")
        async with self.http.post(f"{self.base}/client/requests/{request_id}/upload?csrf={token}", data=form,
                                  allow_redirects=False) as answer:
            return answer.status, await answer.text()


async def _row(node: Any, sql: str, *args: Any) -> Any:
    return await node.node.db.read(lambda conn: conn.execute(sql, args).fetchone())


async def _request_of(node: Any, access_id: str, name: str) -> str:
    return str((await _row(node, "SELECT id FROM client_requests WHERE access_id = ? AND name = ?",
                           access_id, name))[0])


@pytest.fixture
async def world(node_factory, smtp) -> Any:
    """One node; deal 1 with Ana (sees others) and Ben (does not); deal 2 with Cara."""
    a = await node_factory("Summit", **smtp_settings(smtp))
    one = await deal_with_applicants(a)
    two = await deal_with_applicants(a, "Other family refinance", (("Cara", "cara@example.com", None),))
    flow = await ready_to_share(a, one["deal"]["id"])
    await ready_to_share(a, two["deal"]["id"])
    ana, ben = one["contacts"]
    cara = two["contacts"][0]
    ids = {"ana": await share(a, one["deal"]["id"], ana["id"], flow, see_others=True, documents=["Photo ID"]),
           "ben": await share(a, one["deal"]["id"], ben["id"], flow, see_others=False, documents=["Tax return"]),
           "cara": await share(a, two["deal"]["id"], cara["id"], flow, see_others=True, documents=["Payslips"])}
    clients = {}
    for who in ("ana", "ben", "cara"):
        client = Client(a.url)
        await client.sign_in(f"{who}@example.com", passcode_of_mail(await smtp.wait_for(f"{who}@example.com",
                                                                                       "your client portal")))
        clients[who] = client
    try:
        yield {"node": a, "one": one, "two": two, "ids": ids, "clients": clients}
    finally:
        for client in clients.values():
            await client.close()


async def test_a_client_reaches_only_what_is_theirs(world) -> None:
    a, ids, c = world["node"], world["ids"], world["clients"]
    # each uploads to their own request
    for who, doc in (("ana", "Photo ID"), ("ben", "Tax return"), ("cara", "Payslips")):
        status, _ = await c[who].upload(await _request_of(a, ids[who], doc), f"{who}.pdf", pdf(f"{who}-secret"))
        assert status == 303
    files = {who: (await _row(a, "SELECT id FROM client_files WHERE name = ?", f"{who}.pdf"))[0]
             for who in ("ana", "ben", "cara")}
    cara_request = await _request_of(a, ids["cara"], "Payslips")
    ana_request = await _request_of(a, ids["ana"], "Photo ID")
    ben_request = await _request_of(a, ids["ben"], "Tax return")
    deal2_doc = (await _row(a, "SELECT id FROM documents WHERE deal_id = ? AND label = 'Credit guide'",
                            world["two"]["deal"]["id"]))[0]

    # Ana (see others: yes) sees Ben's file and details, and may upload to his request
    assert (await c["ana"].get(f"/client/files/{files['ben']}"))[1] == pdf("ben-secret")
    assert (await c["ana"].get(f"/client/applicants/{ids['ben']}"))[0] == 200
    assert (await c["ana"].upload(ben_request, "for-ben.pdf", pdf("from-ana")))[0] == 303
    # Ben (no) sees neither Ana's file nor her details, nor uploads to her request: 404, as if none
    for path in (f"/client/files/{files['ana']}", f"/client/applicants/{ids['ana']}"):
        status, body, _ = await c["ben"].get(path)
        assert status == 404 and b"ana-secret" not in body, path
    assert (await c["ben"].upload(ana_request, "x.pdf", pdf("x")))[0] == 404
    # someone else's file reads exactly like one that does not exist
    for path in (f"/client/files/{files['ana']}", "/client/files/cfile_01aaaaaaaaaaaaaaaaaaaaaaaa"):
        status, body, _ = await c["ben"].get(path)
        assert status == 404 and b"There is no such file in your portal." in body, (path, body)
    # nobody on deal 1 reaches deal 2, and Cara (see others: yes) does not reach deal 1
    for who, path in (("ana", f"/client/files/{files['cara']}"), ("ana", f"/client/applicants/{ids['cara']}"),
                      ("ana", f"/client/documents/{deal2_doc}"), ("cara", f"/client/files/{files['ana']}"),
                      ("cara", f"/client/applicants/{ids['ana']}"), ("cara", f"/client/applicants/{ids['ben']}")):
        status, body, _ = await c[who].get(path)
        assert status == 404 and b"secret" not in body, (who, path)
    assert (await c["ana"].upload(cara_request, "x.pdf", pdf("x")))[0] == 404
    token = await c["ana"].csrf("/client/dashboard")
    async with c["ana"].http.post(f"{a.url}/client/documents/{deal2_doc}/acknowledge", data={"csrf": token},
                                  allow_redirects=False) as answer:
        assert answer.status == 404
    # a POST without the CSRF token is refused before anything happens
    async with c["ana"].http.post(f"{a.url}/client/messages", data={"body": "hi"}, allow_redirects=False) as answer:
        assert answer.status == 403 and "csrf_failed" in await answer.text()

    # the client's cookie opens no console page and no API, even sent by hand to them
    cookie = {"Cookie": f"rn_client={c['ana'].sid()}"}
    async with aiohttp.ClientSession() as bare:
        for path in ("/", "/deals", f"/deals/{world['one']['deal']['id']}",
                     f"/deals/{world['one']['deal']['id']}/portal", f"/contacts/{world['one']['contacts'][0]['id']}",
                     f"/deals/{world['one']['deal']['id']}/portal/files/{files['ana']}", "/admin", "/settings/portal"):
            async with bare.get(a.url + path, headers=cookie, allow_redirects=False) as answer:
                assert answer.status == 303 and answer.headers["Location"].startswith("/login"), path
        # nor a page of the partner portal, where only a partner's session counts
        for path in ("/partner/", "/partner/deals/new", "/partner/settings",
                     f"/partner/deals/{world['one']['deal']['id']}"):
            async with bare.get(a.url + path, headers=cookie, allow_redirects=False) as answer:
                assert answer.status in (303, 404) and b"Ana" not in await answer.read(), path
                assert answer.status == 404 or answer.headers["Location"].startswith("/partner/login"), path
        for path in ("/api/v1/deals", f"/api/v1/deals/{world['one']['deal']['id']}", "/api/v1/contacts"):
            async with bare.get(a.url + path, headers=cookie) as answer:
                assert answer.status == 401, path
        # and without a client session, no client page
        for path in ("/client/dashboard", f"/client/files/{files['ana']}", f"/client/applicants/{ids['ben']}"):
            async with bare.get(a.url + path, allow_redirects=False) as answer:
                assert answer.status == 303 and answer.headers["Location"].startswith("/client/sign-in"), path
    # client pages may frame only the privacy-enhanced players; console pages frame nothing
    _, _, answer = await c["ana"].get("/client/dashboard")
    csp = answer.headers["Content-Security-Policy"]
    assert "frame-src https://www.youtube-nocookie.com https://player.vimeo.com" in csp
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


async def test_client_documents_are_sealed_at_rest_and_a_flipped_byte_is_caught(world) -> None:
    a, ids, c = world["node"], world["ids"], world["clients"]
    marker = "CLEAR-BYTES-7f3a9c-ONLY-IN-MEMORY"
    original = pdf(marker * 50)
    status, _ = await c["ana"].upload(await _request_of(a, ids["ana"], "Photo ID"), "passport.pdf", original)
    assert status == 303
    file_id, sha = await _row(a, "SELECT id, sha256 FROM client_files WHERE name = 'passport.pdf'")
    # nowhere in the data folder in clear: not the file, not the database or its journal
    data_dir = a.config.data_dir
    found = await asyncio.to_thread(
        lambda: [p for p in _files_under(data_dir) if marker.encode() in p.read_bytes()])
    assert found == []
    stored = data_dir / "client-files" / file_id
    assert stored.stat().st_mode & 0o777 == 0o600 and (data_dir / "client-files").stat().st_mode & 0o777 == 0o700
    key = a.config.keys_dir / "client-data.key"
    assert key.stat().st_mode & 0o777 == 0o600
    # it comes back whole to the client
    status, body, _ = await c["ana"].get(f"/client/files/{file_id}")
    assert status == 200 and body == original
    # one flipped byte in the stored file: refused with a clear error, nothing of it served
    sealed = bytearray(stored.read_bytes())
    sealed[len(sealed) // 2] ^= 0x01
    stored.write_bytes(bytes(sealed))
    status, body, answer = await c["ana"].get(f"/client/files/{file_id}")
    text = body.decode()
    assert status == 409 and "is damaged" in text and "fails its integrity check" in text, text
    assert marker not in text and answer.content_type == "text/html"
    assert sha not in text


async def test_no_sms_credit_means_no_sms_but_the_mail_goes_and_the_broker_is_told(node_factory, smtp,
                                                                                      tmp_path) -> None:
    gateway = SmsGateway()
    await gateway.start()
    try:
        a = await node_factory("Summit", **node_settings(tmp_path, smtp, gateway))
        one = await deal_with_applicants(a)
        flow = await ready_to_share(a, one["deal"]["id"])
        await share(a, one["deal"]["id"], one["contacts"][0]["id"], flow, see_others=False, documents=["Photo ID"])
        mail = await smtp.wait_for("ana@example.com", "your client portal")
        assert re.search(r"Your passcode: \d{6}", text_of(mail))  # by e-mail, as no SMS could go
        told = await smtp.wait_for(a.extra["admin_email"], "Text message not sent to Ana Hill")
        assert "no SMS credits" in text_of(told)
        notes = (await a.api("GET", f"/api/v1/deals/{one['deal']['id']}/notes"))["notes"]
        assert any("was not sent: no SMS credits left" in n["body"] for n in notes)
        # a stage change reaches the client by e-mail (the default for that event)
        stage = one["workflow"]["stages"][1]
        await a.api("POST", f"/api/v1/deals/{one['deal']['id']}/move", {"stage_id": stage["id"]})
        moved = await smtp.wait_for("ana@example.com", f"is now at: {stage['name']}")
        assert "/client/sign-in" in text_of(moved)
        await asyncio.sleep(0.5)
        assert gateway.received == []
    finally:
        await gateway.stop()


async def test_a_passcode_works_once_expires_and_new_ones_are_rate_limited(node_factory, smtp) -> None:
    from datetime import timedelta

    from node.portal import access
    from node.portal import settings as portal

    a = await node_factory("Summit", **smtp_settings(smtp))
    one = await deal_with_applicants(a)
    flow = await ready_to_share(a, one["deal"]["id"])
    access_id = await share(a, one["deal"]["id"], one["contacts"][0]["id"], flow, see_others=False,
                            documents=["Photo ID"])
    code = passcode_of_mail(await smtp.wait_for("ana@example.com", "your client portal"))
    first, second = Client(a.url), Client(a.url)
    try:
        await first.sign_in("ana@example.com", code)
        token = await second.csrf("/client/sign-in")
        async with second.http.post(a.url + "/client/sign-in", data={"csrf": token, "email": "ana@example.com",
                                                                     "passcode": code}) as answer:
            assert answer.status == 400 and "not right" in await answer.text()  # used once already
        # a new passcode by e-mail (no SMS here); a second ask within the minute sends nothing
        for _ in range(2):
            token = await second.csrf("/client/passcode")
            async with second.http.post(a.url + "/client/passcode", data={"csrf": token,
                                                                          "email": "ana@example.com"}) as answer:
                assert "If that address has a client portal here" in await answer.text()
        fresh = passcode_of_mail(await smtp.wait_for("ana@example.com", "Your passcode for Summit"))
        await asyncio.sleep(0.5)
        assert sum("Your passcode for" in str(m["Subject"]) for m in smtp.messages) == 1
        # past its 30 minutes it no longer works
        later = a.node.clock.now() + timedelta(minutes=31)
        with pytest.raises(access.SignInRefused, match="expired"):
            await a.node.transact(lambda conn, ctx: access.sign_in(conn, a.config.keys_dir, "ana@example.com",
                                                                   fresh, later))
        await second.sign_in("ana@example.com", fresh)

        # the broker's videos: a stage's on the dashboard, a flow section's on its page,
        # each through the privacy-enhanced player only
        me = one["deal"]["owner_user_id"]

        def videos(conn: Any, ctx: Any) -> None:
            portal.set_video(conn, me, stage_id=one["deal"]["stage_id"], url="https://youtu.be/dQw4w9WgXcQ",
                             description="What happens at <b>Lead</b>")
            portal.set_video(conn, me, flow_id=flow, section="personal", url="https://vimeo.com/76979871",
                             description="About your details")

        await a.node.transact(videos)
        _, body, _ = await second.get("/client/dashboard")
        assert b'<iframe src="https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"' in body
        assert b"What happens at &lt;b&gt;Lead&lt;/b&gt;" in body
        _, body, _ = await second.get("/client/fact-find/personal")
        assert b'<iframe src="https://player.vimeo.com/video/76979871?dnt=1"' in body
        assert access_id
    finally:
        await first.close()
        await second.close()


async def test_bad_input_gets_a_clear_error_and_leaves_nothing_behind(node_factory, smtp) -> None:
    a = await node_factory("Summit", max_upload_bytes=4096, **smtp_settings(smtp))
    one = await deal_with_applicants(a)
    flow = await ready_to_share(a, one["deal"]["id"])
    access_id = await share(a, one["deal"]["id"], one["contacts"][0]["id"], flow, see_others=False,
                            documents=["Photo ID"])
    client = Client(a.url)
    try:
        await client.sign_in("ana@example.com", passcode_of_mail(await smtp.wait_for("ana@example.com", "portal")))
        request_id = await _request_of(a, access_id, "Photo ID")
        # too large, the wrong kind, not multipart, another request's id: refused by name, nothing stored
        status, text = await client.upload(request_id, "big.pdf", pdf("x" * 5000))
        assert status == 413 and "smaller than 4 KB" in text
        status, text = await client.upload(request_id, "photo.exe", b"MZ\x90\x00")
        assert status == 400 and "The file must be a PDF" in text
        status, text = await client.upload(request_id, "empty.pdf", b"")
        assert status == 400 and "The file is empty" in text
        status, text = await client.upload("docreq_01aaaaaaaaaaaaaaaaaaaaaaaa", "a.pdf", pdf("a"))
        assert status == 404
        token = await client.csrf("/client/dashboard")
        async with client.http.post(f"{a.url}/client/requests/{request_id}/upload?csrf={token}",
                                    data={"file": "plain"}) as answer:
            assert answer.status == 400 and "multipart/form-data" in await answer.text()
        assert not list((a.config.data_dir / "client-files").glob("*"))
        assert (await _row(a, "SELECT count(*) FROM client_files"))[0] == 0
        # an unknown section, a control character, a message too long
        assert (await client.get("/client/fact-find/spaceship"))[0] == 404
        token = await client.csrf("/client/fact-find/personal")
        async with client.http.post(f"{a.url}/client/fact-find/personal",
                                    data={"csrf": token, "about-first_name": "Ana\x00"}) as answer:
            assert answer.status == 400 and "invalid" in await answer.text()
        async with client.http.post(f"{a.url}/client/messages", data={"csrf": token, "body": "x" * 4001}) as answer:
            assert answer.status == 400 and "4,000 characters or fewer" in await answer.text()
        assert (await _row(a, "SELECT count(*) FROM client_messages"))[0] == 0
        assert (await _row(a, "SELECT answers FROM client_access WHERE id = ?", access_id))[0] == "{}"
    finally:
        await client.close()


async def test_on_a_node_with_a_key_passphrase_the_data_key_is_sealed_and_files_still_open(tmp_path, smtp) -> None:
    from conftest import RunningNode, make_config

    from node.cli.setup import init_node

    secret = b"correct horse battery staple, sealed"
    config = make_config(tmp_path, "Sealed", **smtp_settings(smtp))
    made = init_node(config, admin_email="admin@sealed.example", admin_name="Sealed Admin", passphrase=secret)
    a = RunningNode("Sealed", config, made.admin_token)
    a.extra["admin_email"] = "admin@sealed.example"
    await a.start(passphrase=secret)
    client = Client(a.url)
    try:
        one = await deal_with_applicants(a)
        flow = await ready_to_share(a, one["deal"]["id"])
        access_id = await share(a, one["deal"]["id"], one["contacts"][0]["id"], flow, see_others=False,
                                documents=["Photo ID"])
        await client.sign_in("ana@example.com", passcode_of_mail(await smtp.wait_for("ana@example.com", "portal")))
        assert (await client.upload(await _request_of(a, access_id, "Photo ID"), "id.pdf", pdf("sealed-id")))[0] == 303
        file_id = (await _row(a, "SELECT id FROM client_files"))[0]
        status, body, _ = await client.get(f"/client/files/{file_id}")
        assert status == 200 and body == pdf("sealed-id")
        stored = (config.keys_dir / "client-data.key").read_bytes()
        assert stored.startswith(b"{") and b'"refnode-client-data-key/1"' in stored and b"scrypt" in stored
    finally:
        await client.close()
        await a.close()


async def test_a_new_zealand_organisation_needs_its_own_labelled_documents(node_factory) -> None:
    from node.portal import access
    from node.portal import settings as portal

    a = await node_factory("Harbour")
    one = await deal_with_applicants(a)
    await ready_to_share(a, one["deal"]["id"])  # the default set: Credit guide, Privacy disclosure
    me, deal_id = one["deal"]["owner_user_id"], one["deal"]["id"]
    assert await a.node.db.read(lambda conn: access.blockers(conn, deal_id, me)) == []
    await a.node.transact(lambda conn, ctx: portal.set_jurisdiction(conn, "NZ"))
    missing = await a.node.db.read(lambda conn: access.blockers(conn, deal_id, me))
    assert missing == ["Upload to this deal a document labelled “Acknowledgement and declaration”, a document "
                       "labelled “Adviser guide” and a document labelled “ROMA”."]
    with pytest.raises(CrmError):
        await a.node.transact(lambda conn, ctx: portal.set_jurisdiction(conn, "Atlantis"))


async def test_a_referred_deal_carries_nothing_of_its_client_portal(node_factory, smtp) -> None:
    """A deal whose client uploaded a file and answered the fact find is referred to a
    second node with every field its connection may share: what arrives holds the deal,
    but not the file, its name or SHA-256, nor any answer."""
    import base64
    import hashlib
    from typing import get_args

    from refer_kit import connect

    from node.federation.connection_settings import ShareableField
    from node.portal import settings as portal

    a = await node_factory("Summit", **smtp_settings(smtp))
    b = await node_factory("Harbour")
    cid = await connect(a, b)
    await a.api("PATCH", f"/api/v1/connections/{cid}/settings",
                {"outbound": {"referral_type": "mortgage", "allowed_fields": list(get_args(ShareableField))}})
    one = await deal_with_applicants(a)
    deal_id, ana = one["deal"]["id"], one["contacts"][0]
    await ready_to_share(a, deal_id)
    me = one["deal"]["owner_user_id"]
    flow = await a.node.transact(lambda conn, ctx: portal.save_flow(
        conn, me, loan_type="Purchase", name="Personal", now=ctx.now,
        sections={"personal": ["about", "dependants", "residency"]}))
    access_id = await share(a, deal_id, ana["id"], flow, see_others=False, documents=["Photo ID"])
    client = Client(a.url)
    try:
        await client.sign_in("ana@example.com", passcode_of_mail(await smtp.wait_for("ana@example.com", "portal")))
        original = pdf("PASSPORT-BYTES-5d21")
        status, _ = await client.upload(await _request_of(a, access_id, "Photo ID"), "ana-passport-9q.pdf", original)
        assert status == 303
        token = await client.csrf("/client/fact-find/personal")
        async with client.http.post(f"{a.url}/client/fact-find/personal", allow_redirects=False, data={
                "csrf": token, "about-first_name": "Ana", "about-last_name": "Hill", "about-date_of_birth": "1990-02-27",
                "about-marital_status": "Married", "dependants-1-name": "Zephyrine Hill",
                "dependants-1-date_of_birth": "2019-06-01", "residency-status": "Citizen",
                "residency-visa": "Subclass 8801"}) as answer:
            assert answer.status == 303, await answer.text()
    finally:
        await client.close()
    stored = await _row(a, "SELECT answers FROM client_access WHERE id = ?", access_id)
    assert "Zephyrine Hill" in stored[0] and "Subclass 8801" in stored[0]  # the answers are there to leak

    admin = await owner_id(a)
    await a.api("POST", f"/api/v1/deals/{deal_id}/refer", {
        "connection_id": cid, "referring_agent_user_id": admin,
        "consent": {"contact_ids": [ana["id"]], "method": "verbal", "disclosure_version": "v1",
                    "disclosure_text": "We share your details with Harbour."}}, expect=202)
    for _ in range(200):
        arrived = await b.node.db.read(lambda conn: [bytes(r[0]) + bytes(r[1]) for r in conn.execute(
            "SELECT body, inner FROM inbox WHERE type LIKE 'referral-offer/%'")])
        if arrived:
            break
        await asyncio.sleep(0.1)
    assert len(arrived) == 1
    # the envelope is sealed to Harbour; what it opened to (the signed inner message) is
    # read in clear, each dot-separated part of it decoded too
    payload = arrived[0]
    for part in payload.split(b"."):
        try:
            payload += base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))
        except ValueError:
            continue
    assert b"Hill family purchase" in payload and b"ana@example.com" in payload  # the deal did travel
    digest = hashlib.sha256(original).digest()
    for kept in (b"PASSPORT-BYTES-5d21", b"ana-passport-9q", digest.hex().encode(),
                 base64.urlsafe_b64encode(digest).rstrip(b"="), b"Zephyrine", b"Subclass 8801", b"Married",
                 b"Photo ID", b"Credit guide"):
        assert kept not in payload, kept
    # nor does the receiving node hold any of it anywhere in its data folder
    found = await asyncio.to_thread(lambda: [p for p in _files_under(b.config.data_dir)
                                             if b"Zephyrine" in p.read_bytes() or b"PASSPORT-BYTES" in p.read_bytes()])
    assert found == []
