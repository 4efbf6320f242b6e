"""Referrals from partners in the reports (issue 13): per partner, beside the referrals
from connections, with how their deals stand."""

from __future__ import annotations

from dataclasses import replace

from test_web_deals import look
from test_web_partner_scope import setup
from web_kit import choose_password, new_page

from node.crm import portal


async def test_reports_show_referrals_by_partner(node_factory, browser) -> None:
    a = await node_factory("Acme")
    w = await setup(a)  # Pat One and Pia Two, one deal each; the workflow's last stage means won
    deal = (await a.api("GET", f"/api/v1/deals/{w['p1']['deal']}"))["deal"]
    stages = (await a.api("GET", f"/api/v1/workflows/{deal['workflow_id']}"))["workflow"]["stages"]
    await a.api("PATCH", f"/api/v1/stages/{stages[-1]['id']}", {"outcome": "won"})
    # Pat turned on "won or lost" (allowed), Pia did not: only Pat is told
    await a.node.db.write(lambda conn: (
        portal.save_settings(conn, replace(portal.settings(conn), allowed=frozenset({"partner_outcome"}))),
        portal.set_notifications(conn, w["p1"]["id"], {"partner_outcome", "partner_note"}),
        portal.set_notifications(conn, w["p2"]["id"], set())))
    await a.api("POST", f"/api/v1/deals/{deal['id']}/move", {"stage_id": stages[-1]["id"]})
    await a.api("POST", f"/api/v1/deals/{w['p2']['deal']}/move", {"stage_id": stages[1]["id"]})
    sent = await a.node.db.read(lambda conn: conn.execute(
        "SELECT kind, to_addr, subject FROM mail_queue WHERE kind LIKE 'partner_%' AND kind != 'partner_added'"
        " ORDER BY created_at").fetchall())
    assert [tuple(r) for r in sent] == [("partner_outcome", "p1@partners.example", "Pat One's client is won")]

    page = await new_page(browser)
    await choose_password(page, a.extra["password_link"])
    await page.goto(a.url + "/reports")
    table = page.get_by_role("region", name="Referrals by partner")
    rows = [await r.inner_text() for r in await table.locator("tbody tr").all()]
    assert len(rows) == 2
    pat = next(r for r in rows if r.startswith("Pat One"))
    assert [cell.strip() for cell in pat.split("\t")[1:]] == ["1", "1", "0", "0", "100%"]
    pia = next(r for r in rows if r.startswith("Pia Two"))
    assert [cell.strip() for cell in pia.split("\t")[1:]] == ["1", "0", "1", "0", "0%"]
    await look(page, "partner-reports")
    # a report of what we sent has no partners' deals; days before the deals, none either
    await page.goto(a.url + "/reports?side=sender")
    assert "shows only the referrals sent" in await page.locator("#h-partners + p + p").inner_text()
    await page.goto(a.url + "/reports?from=2000-01-01&to=2000-12-31")
    assert "No partner created a deal in these days" in await page.locator("main").inner_text()
