"""What the scale benchmarks do through nodes' admin APIs: connect two nodes by the real
invitation handshake, refer a client, wait for a referral's receipt."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

CONSENT = {
    "contact_refs": ["c1"],
    "consented_at": "2026-11-20T10:00:00Z",
    "method": "verbal",
    "disclosure_version": "privacy-2026-07",
    "disclosure_sha256": "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg",
    "recorded_by": {"name": "Ava Agent", "email": "ava@agency.example"},
}


def referral_body(connection_id: str, referral_id: str) -> dict[str, Any]:
    """The referral tests/node/test_two_nodes.py sends, with the given id."""
    return {
        "connection_id": connection_id,
        "referral_id": referral_id,
        "referral_type": "mortgage",
        "deal": {"title": "Purchase at 12 Harbour St", "amount": "650000.00", "currency": "AUD"},
        "contacts": [{"ref": "c1", "first_name": "Jo", "last_name": "Citizen", "email": "jo@example.com"}],
        "shared_fields": ["deal.title", "deal.amount", "contacts.first_name", "contacts.last_name",
                          "contacts.email"],
        "referring_agent": {"name": "Ava Agent", "email": "ava@agency.example"},
        "message": "Pre-approved elsewhere; wants a better rate.",
        "consent": CONSENT,
    }


class Api:
    """One node's admin API, with its token."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self.session, self.url, self.headers = session, url, {"Authorization": f"Bearer {token}"}

    async def __call__(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        async with self.session.request(method, self.url + path, json=body, headers=self.headers) as response:
            data = await response.json()
            if response.status != expect:
                raise RuntimeError(f"{method} {self.url}{path} -> {response.status}, expected {expect}: {data}")
            return data


async def connect(requester: Api, responder: Api, *, name: str = "peer", direction: str = "receive",
                  poll_s: float = 0.02, timeout_s: float = 120.0) -> tuple[str, float]:
    """``responder`` invites, ``requester`` connects with the referral URL and key, and both
    are waited for until active. Returns the connection id and the seconds from the
    connect call until the requester is active (the responder follows on the confirm)."""
    invite = await responder("POST", "/api/v1/invitations", {"name": name, "direction": direction}, expect=201)
    started = time.perf_counter()
    result = await requester("POST", "/api/v1/connections",
                             {"referral_url": invite["referral_url"], "referral_key": invite["referral_key"]},
                             expect=202)
    cid = result["connection"]["id"]
    took = None
    deadline = time.monotonic() + timeout_s
    wait = poll_s
    while True:
        if took is None:
            state = (await requester("GET", f"/api/v1/connections/{cid}"))["connection"]["state"]
            if state == "active":
                took = time.perf_counter() - started
            elif state not in ("requested", "start"):
                raise RuntimeError(f"connection {cid} ended {state}")
        if took is not None:
            async with responder.session.get(f"{responder.url}/api/v1/connections/{cid}",
                                             headers=responder.headers) as response:
                if response.status == 200 and (await response.json())["connection"]["state"] == "active":
                    return cid, took
        if time.monotonic() > deadline:
            raise RuntimeError(f"connection {cid} not active on both sides within {timeout_s} s")
        await asyncio.sleep(wait)
        wait = min(max(poll_s, (time.perf_counter() - started) / 8), 0.5)  # within 1/8 of the time taken
