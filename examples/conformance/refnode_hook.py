"""A ``--hook`` for ``refnode conformance`` when the target is a referral-node: it does
what the suite asks of the target's admin through the node's admin API.

    REFNODE_HOOK_URL=http://127.0.0.1:8701 REFNODE_HOOK_TOKEN=$(cat refnode-data/admin-token) \\
        refnode conformance REFERRAL_URL --key REFERRAL_KEY --hook examples/conformance/refnode_hook.py

The suite runs ``refnode_hook.py ACTION`` with ``REFNODE_CONFORMANCE_*`` variables:
``accept-connection`` (CONNECTION_ID), ``send-referral`` (CONNECTION_ID),
``update-referral`` (REFERRAL_ID) and ``rotate-keys``. Exit 0 when done, 77 to skip.
For another implementation, write the same four actions against its own API.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

URL = os.environ["REFNODE_HOOK_URL"].rstrip("/")
TOKEN = os.environ["REFNODE_HOOK_TOKEN"]
PERSON = {"name": "Conformance Hook", "email": "hook@conformance.invalid"}


def api(method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 (the node's own admin API)
        URL + path, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:  # noqa: S310
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        sys.exit(f"{method} {path}: HTTP {exc.code} {exc.read()[:300]!r}")


def variable(name: str) -> str:
    return os.environ[f"REFNODE_CONFORMANCE_{name}"]


def main(action: str) -> int:
    if action == "accept-connection":
        api("POST", f"/api/v1/connections/{variable('CONNECTION_ID')}/accept")
    elif action == "send-referral":
        api("POST", "/api/v1/referrals", {
            "connection_id": variable("CONNECTION_ID"), "referral_type": "home-loan",
            "deal": {"title": "Conformance referral (no real client)"},
            "contacts": [{"ref": "hook_1", "first_name": "Test"}], "shared_fields": ["contacts.first_name"],
            "referring_agent": PERSON,
            "consent": {"contact_refs": ["hook_1"], "consented_at": "2026-01-01T00:00:00Z", "method": "verbal",
                        "disclosure_version": "test", "disclosure_sha256": "A" * 43, "recorded_by": PERSON}})
    elif action == "update-referral":
        wanted, offset = variable("REFERRAL_ID"), 0
        while page := api("GET", f"/api/v1/referrals?side=receiver&limit=100&offset={offset}")["referrals"]:
            found = [r for r in page if r["id"] == wanted]
            if found:
                api("POST", f"/api/v1/referrals/{found[0]['local_id']}/status", {"status": "accepted"})
                return 0
            offset += len(page)
        sys.exit(f"no received referral {wanted}")
    elif action == "rotate-keys":
        api("POST", "/api/v1/keys/rotate")
    else:
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
