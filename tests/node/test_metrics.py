"""``/metrics`` during a two-node exchange: every family moves as the exchange does, and
the endpoint opens only to the metrics token.

Two real nodes on 127.0.0.1 (in this process: one registry each, never shared). The
process-level test with inbox fronts, whose counts come from several processes, is in
test_metrics_processes.py."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from conftest import wait_for
from metrics_kit import ascrape, metrics_token, parse, total, value
from test_inbox_refusals import envelope, keys_of, offer, post
from test_two_nodes import connect_by_invitation, referral_body

from protocol.wire import MEDIA_TYPE_JOSE_JSON


async def get(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as r:
        await r.read()
        return r.status


async def test_metrics_need_their_own_token(node_factory):
    agency = await node_factory("Agency")
    token = metrics_token(agency.config.data_dir)
    assert (agency.config.data_dir / "metrics-token").stat().st_mode & 0o777 == 0o600
    status, body, _ = await ascrape(agency.url, None)
    assert status == 401 and json.loads(body)["error"]["code"] == "unauthenticated"
    status, body, _ = await ascrape(agency.url, agency.token)  # an admin token opens the API, not this
    assert status == 401
    status, body, _ = await ascrape(agency.url, "rnm_" + "x" * 43)
    assert status == 401
    status, body, headers = await ascrape(agency.url, token)
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert "refnode_inbox_envelopes_total" in body and "process_resident_memory_bytes" in body
    # Wrong tokens are limited like the admin API's: past the limit even the right one waits.
    for _ in range(25):
        await ascrape(agency.url, "rnm_wrong")
    status, body, headers = await ascrape(agency.url, token)
    assert status == 429 and json.loads(body)["error"]["code"] == "rate_limited" and "Retry-After" in headers


async def test_every_family_moves_during_a_two_node_exchange(node_factory):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    a_token, b_token = metrics_token(agency.config.data_dir), metrics_token(broker.config.data_dir)

    async def scrape(node, token):  # type: ignore[no-untyped-def]
        status, text, _ = await ascrape(node.url, token)
        assert status == 200, text
        return parse(text)

    a0, b0 = await scrape(agency, a_token), await scrape(broker, b_token)
    cid, _ = await connect_by_invitation(agency, broker)
    peer = broker.node.me

    # Referrals delivered: the broker's inbox counts them, the agency's delivery attempts and
    # latencies move, and both databases grow.
    for i in range(5):
        await agency.api("POST", "/api/v1/referrals", referral_body(cid, referral_id=f"rfl_m{i}"))

    async def delivered() -> bool:
        refs = (await agency.api("GET", "/api/v1/referrals?side=sender"))["referrals"]
        return len(refs) == 5 and all(r["state"] == "delivered" for r in refs)

    await wait_for(delivered)
    a1, b1 = await scrape(agency, a_token), await scrape(broker, b_token)
    offers = dict(type="referral-offer", outcome="accepted", code="none")
    assert value(b1, "refnode_inbox_envelopes_total", **offers) - value(b0, "refnode_inbox_envelopes_total", **offers) == 5
    assert value(b1, "refnode_inbox_envelopes_total", type="connection-request", outcome="accepted", code="none") == 1
    assert value(a1, "refnode_delivery_attempts_total", peer=peer) >= 6  # the handshake's and the offers
    assert total(a1, "refnode_delivery_seconds_count", outcome="delivered") >= 6
    assert value(a1, "refnode_outbox_pending", peer=peer) == 0
    assert value(a1, "refnode_outbox_oldest_pending_age_seconds", peer=peer) == 0
    for samples0, samples1 in ((a0, a1), (b0, b1)):
        size0 = total(samples0, "refnode_database_bytes")
        assert value(samples1, "refnode_database_bytes", file="main") > 0
        assert total(samples1, "refnode_database_bytes") > size0

    # The same envelope twice, and junk: a duplicate and a refusal, by type and code.
    bkeys = keys_of(broker)
    body = envelope(agency, peer, bkeys, offer(cid, referral_id="rfl_twice"), envelope_id="env_twice")
    assert (await post(broker, body))[0] == 200
    assert (await post(broker, body))[0] == 200
    assert (await post(broker, b"{not an envelope", MEDIA_TYPE_JOSE_JSON))[0] == 400
    b2 = await scrape(broker, b_token)
    assert value(b2, "refnode_inbox_envelopes_total", type="referral-offer", outcome="duplicate", code="none") == 1
    assert value(b2, "refnode_inbox_envelopes_total", type="unknown", outcome="refused", code="malformed") == 1
    assert total(b2, "refnode_http_request_seconds_count", group="inbox", status="2xx") >= 7
    assert total(b2, "refnode_http_request_seconds_count", group="inbox", status="4xx") == 1

    # The broker goes away: the agency's outbox fills and ages, attempts fail on the network.
    await broker.stop()
    await agency.api("POST", "/api/v1/referrals", referral_body(cid, referral_id="rfl_waiting"))
    await asyncio.sleep(1.5)
    a2 = await scrape(agency, a_token)
    assert value(a2, "refnode_outbox_pending", peer=peer) == 1
    assert value(a2, "refnode_outbox_oldest_pending_age_seconds", peer=peer) >= 1
    assert value(a2, "refnode_delivery_failures_total", peer=peer, reason="network") >= 1
    assert total(a2, "refnode_delivery_seconds_count", outcome="retry") >= 1
    await broker.start()

    async def drained() -> bool:
        return value(await scrape(agency, a_token), "refnode_outbox_pending", peer=peer) == 0

    await wait_for(drained, within_s=20)

    # Mail: a new user's set-password mail is queued and sent (as an .eml file here).
    await agency.api("POST", "/api/v1/users", {"email": "new@agency.example", "name": "New Person",
                                               "send_email": True})

    async def mailed() -> bool:
        return value(await scrape(agency, a_token), "refnode_mail_sent_last_24h") == value(a0, "refnode_mail_sent_last_24h") + 1

    await wait_for(mailed)

    # HTTP latency by route group: the inbox, the API, a page, a static file, the rest.
    assert await get(agency.url + "/login") == 200
    assert await get(agency.url + "/static/app.css") == 200
    assert await get(agency.url + "/healthz") == 200
    assert await get(agency.url + "/no/such/path") == 404
    a3 = await scrape(agency, a_token)
    groups = {g: total(a3, "refnode_http_request_seconds_count", group=g) for g in ("api", "pages", "static", "other")}
    assert all(count >= 1 for count in groups.values()), groups
    assert total(a3, "refnode_http_request_seconds_count", group="other", status="4xx") >= 1
    # One process, no fronts: none configured, none connected, none restarted.
    assert value(a3, "refnode_inbox_fronts", state="configured") == 0
    assert value(a3, "refnode_inbox_front_restarts_total") == 0
    # Mail waiting and failing are there, at zero: SMTP is not set, mail goes to files.
    assert value(a3, "refnode_mail_queue", state="waiting") == 0
    assert ("refnode_mail_queue", frozenset({("state", "failing")})) in a3
