"""The partner portal's scoping guard over raw HTTP (no browser), with each role's own
session on a real node: a partner opens the deals they created and nothing else (another
partner's deal, a deal not shared with them, a deal that does not exist: the same 404),
a broker is never inside the portal, and a partner never inside the console. The browser
tests of tests/web/test_web_partner_scope.py cover the pages; these are the guard's own,
fast enough for mutation testing (``.ci/mutation``)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from node.crm import accounts, partner_deals, partners, portal
from node.crm.access import AccessDenied, Caller, CrmError, authorize, partner_deal
from node.web.views import SESSION_COOKIE


async def _world(a: Any) -> dict[str, Any]:
    admin = (await a.api("GET", "/api/v1/users"))["users"][0]["id"]
    wf = (await a.api("POST", "/api/v1/workflows", {"name": "Home loans", "owner_user_id": admin,
                                                    "stage_names": ["Lead", "Settled"]}, expect=201))["workflow"]
    broker = (await a.api("POST", "/api/v1/users", {"email": "bea@acme.example", "name": "Bea Broker",
                                                    "role": "broker"}, expect=201))["user"]["id"]
    unshared = (await a.api("POST", "/api/v1/deals", {"title": "Broker only", "workflow_id": wf["id"],
                                                      "stage_id": wf["stages"][0]["id"]}, expect=201))["deal"]["id"]

    def build(conn: Any) -> dict[str, Any]:
        now = a.node.clock.now()
        portal.save_settings(conn, portal.PortalSettings(wf["id"], True, True, frozenset(), "v1", "We pass it on."))
        made: dict[str, Any] = {"unshared": unshared, "broker_sid": accounts.start_session(conn, broker, now)}
        for key, name in (("p1", "Pat One"), ("p2", "Pia Two")):
            p = partners.create_partner(conn, partners.PartnerIn(name=name, email=f"{key}@partners.example",
                                                                 phone="0400 000 000"), [broker], added_by=None,
                                        now=now)
            caller = Caller(p.id, p.email, p.name, "partner")
            deal = partner_deals.create_deal(
                conn, caller, title=f"{name}'s client", owner_id=broker, message="", consented=True, now=now,
                clients=[partner_deals.NewClient("Chris", "Client", "chris@c.example", "0400 111 222")])
            made[key] = {"caller": caller, "deal": deal.id, "sid": accounts.start_session(conn, p.id, now)}
        return made

    return await a.node.db.write(build)


def _session(a: Any, sid: str) -> aiohttp.ClientSession:
    jar = aiohttp.CookieJar(unsafe=True)
    jar.update_cookies({SESSION_COOKIE: sid}, response_url=aiohttp.client.URL(a.url))
    return aiohttp.ClientSession(cookie_jar=jar, headers={"Accept": "text/html"})


async def _status(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def test_a_partner_opens_their_own_deals_and_gets_404_for_every_other(node_factory: Any) -> None:
    a = await node_factory("Acme")
    w = await _world(a)
    async with _session(a, w["p1"]["sid"]) as pat:
        status, text = await _status(pat, f"{a.url}/partner/deals/{w['p1']['deal']}")
        assert status == 200 and "Pat One&#39;s client" in text
        for other in (w["p2"]["deal"], w["unshared"], "deal_nonesuch"):
            status, text = await _status(pat, f"{a.url}/partner/deals/{other}")
            assert status == 404 and "not shared with you" in text, (other, status)
            assert "Pia Two" not in text and "Broker only" not in text
        # the console is not a partner's: its pages answer as if they were not there
        status, _ = await _status(pat, f"{a.url}/deals/{w['p1']['deal']}")
        assert status == 404
        # a partner's home is the portal
        async with pat.get(a.url + "/", allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (303, "/partner/")
    async with aiohttp.ClientSession() as nobody:  # without a session: the portal's own sign-in
        async with nobody.get(f"{a.url}/partner/deals/{w['p1']['deal']}", allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == f"/partner/login?next=%2Fpartner%2Fdeals%2F{w['p1']['deal']}"
        async with nobody.get(f"{a.url}/deals", allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (303, "/login?next=%2Fdeals")
    async with _session(a, w["broker_sid"]) as bea:  # a broker is never inside the portal
        status, _ = await _status(bea, f"{a.url}/partner/deals/{w['p1']['deal']}")
        assert status == 404


async def test_the_guard_itself_answers_by_whose_deal_it_is(node_factory: Any) -> None:
    a = await node_factory("Acme")
    w = await _world(a)
    pat, pia = w["p1"]["caller"], w["p2"]["caller"]
    broker = Caller("usr_x", "bea@acme.example", "Bea", "broker")

    def check(conn: Any) -> None:
        assert partner_deal(conn, pat, w["p1"]["deal"]) == w["p1"]["deal"]
        for caller, deal in ((pat, w["p2"]["deal"]), (pia, w["p1"]["deal"]), (pat, w["unshared"]),
                             (broker, w["p1"]["deal"])):
            with pytest.raises(CrmError) as caught:
                partner_deal(conn, caller, deal)
            assert caught.value.code == "not_found", (caller.name, deal)

    await a.node.db.read(check)
    # one check for every page: a partner only in the portal, everyone else only in the console
    authorize(pat, admin_only=False, portal="partner")
    authorize(broker, admin_only=False)
    for caller, portal_name in ((pat, "console"), (broker, "partner")):
        with pytest.raises(CrmError) as hidden:
            authorize(caller, admin_only=False, portal=portal_name)  # type: ignore[arg-type]
        assert (hidden.value.code, str(hidden.value)) == ("not_found", "There is no page here.")
    with pytest.raises(AccessDenied):
        authorize(broker, admin_only=True)
    authorize(Caller("usr_a", "a@acme.example", "Ada", "admin"), admin_only=True)
