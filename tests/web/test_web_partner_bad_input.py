"""Bad input to the partner portal's and its admin's forms (issue 13), sent raw with real
sessions: each gets a clear answer with a stable status, never a 500, and writes nothing."""

from __future__ import annotations

from typing import Any

import aiohttp
from test_web_deal_files import session_of
from test_web_partner_scope import csrf_of, setup, status_of
from web_kit import choose_password, new_page

TABLES = ("users", "deals", "contacts", "notes", "deal_partners", "partner_brokers", "partner_consents",
          "connection_relations", "enterprise_partner_sends", "outbox", "mail_queue", "portal_settings")


async def counts(a: Any) -> dict[str, int]:
    return await a.node.db.read(lambda conn: {
        t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES})  # noqa: S608 (our names)


CLIENT = {"c_first_name": "Jo", "c_last_name": "Citizen", "c_email": "jo@c.example", "c_phone": "0400 000 000",
          "consent": "yes", "action": "create"}


async def test_bad_input_is_refused_and_writes_nothing(node_factory, browser) -> None:
    a = await node_factory("Acme")
    w = await setup(a)
    partner, admin = await new_page(browser), await new_page(browser)
    await choose_password(partner, w["p1"]["link"])
    await choose_password(admin, a.extra["password_link"])
    p_http, a_http = await session_of(partner, a), await session_of(admin, a)
    try:
        before = await counts(a)
        p_csrf, a_csrf = csrf_of(p_http), csrf_of(a_http)
        admin_id = (await a.api("GET", "/api/v1/users"))["users"][0]["id"]
        cases: list[tuple[aiohttp.ClientSession, str, Any, int, str]] = [
            # the portal's new deal: another partner as owner, a broker not theirs, no consent
            (p_http, "/partner/deals", {**CLIENT, "owner_id": w["p2"]["id"]}, 400, "Choose one of your brokers"),
            (p_http, "/partner/deals", {**CLIENT, "owner_id": admin_id}, 400, "Choose one of your brokers"),
            (p_http, "/partner/deals", {**CLIENT, "owner_id": admin_id, "consent": ""}, 400, "agreed to be contacted"),
            (p_http, "/partner/deals", {**CLIENT, "c_email": "nope", "owner_id": admin_id}, 400, "Enter an e-mail"),
            (p_http, "/partner/deals", {**CLIENT, "c_first_name": "x" * 300, "owner_id": admin_id}, 400,
             "200 characters"),
            (p_http, "/partner/deals", {**CLIENT, "c_first_name": "Jo\x00"}, 400, "invalid"),
            (p_http, "/partner/deals", b"\xff\xfe=\xff", 400, "invalid"),
            (p_http, "/partner/deals", {**CLIENT, "csrf": "forged"}, 403, "csrf_failed"),
            (p_http, f"/partner/deals/{w['p1']['deal']}/notes", {"body": "x" * 9000}, 400, "8,000 characters"),
            (p_http, "/partner/settings/profile", {"name": ""}, 400, "Enter the name"),
            (p_http, "/partner/settings/email", {"email": "p1@partners.example"}, 400, "already your e-mail"),
            (p_http, "/partner/confirm-email/rne_forged", {}, 400, "This link does not work"),
            # the admin's forms: a partner as a broker, an unknown partner, a taken address
            (a_http, "/admin/partners", {"name": "X", "email": "x@p.example", "phone": "0400 000 000",
                                         "brokers": w["p2"]["id"]}, 400, "Choose brokers of this organisation"),
            (a_http, "/admin/partners", {"name": "X", "email": "p2@partners.example", "phone": "0400 000 000"}, 400,
             "already a partner"),
            (a_http, "/admin/partners", {"name": "X", "email": a.extra["admin_email"], "phone": "0400 000 000"},
             400, "already a user of this organisation"),
            (a_http, "/admin/partners/usr_01kdyak3487aj56vd0mvtn85v7/remove", {}, 404, "no such partner"),
            (a_http, f"/admin/partners/{w['p1']['id']}", {"name": "Pat", "phone": "letters"}, 400,
             "Enter a phone number"),
            (a_http, "/admin/partner-portal", {"default_workflow_id": "wf_01kdyak3487aj56vd0mvtn85v7",
                                               "disclosure_version": "v2", "disclosure_text": "t"}, 400,
             "Choose one of the organisation"),
            (a_http, "/admin/enterprise/con_01kdyak3487aj56vd0mvtn85v7", {"relation": "child"}, 404,
             "no such active connection"),
            (a_http, "/admin/enterprise/con_01kdyak3487aj56vd0mvtn85v7/partners", {"kind": "new"}, 404,
             "no such child"),
            (a_http, f"/deals/{w['p1']['deal']}/partners", {"partner_id": "usr_01kdyak3487aj56vd0mvtn85v7"}, 404,
             "no such partner"),
            (a_http, f"/deals/{w['p1']['deal']}/notes/note_01kdyak3487aj56vd0mvtn85v7/share", {"shared": "yes"},
             404, "no such note"),
        ]
        for http, path, body, status, says in cases:
            csrf = p_csrf if http is p_http else a_csrf
            data = body if isinstance(body, bytes) else {"csrf": csrf, **body}
            headers = {"Content-Type": "application/x-www-form-urlencoded"} if isinstance(body, bytes) else {}
            got, text = await status_of(http, a.url + path, "POST", data=data, headers=headers)
            assert (got, says.lower() in text.lower()) == (status, True), (path, body, got, text[-2000:])
        assert await counts(a) == before
    finally:
        await p_http.close()
        await a_http.close()
