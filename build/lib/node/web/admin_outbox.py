"""Admin: deliveries and keys.

- ``/admin/outbox``: per organisation, what waits, what fails and the last error
  (``node.federation.delivery_health``); the failed deliveries, each with *Retry*
  (``node.federation.outbox.retry_failed``, as ``POST /api/v1/outbox/{seq}/retry``);
  re-verification of every stored receipt (``node.federation.evidence``);
- ``/admin/keys/rotate``: rotating the signing key, after a confirmation page
  (``Node.rotate_signing_key``, as ``POST /api/v1/keys/rotate``).

``admin_only``, as the API's outbox, receipts and keys routes are.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.federation import evidence
from node.federation.delivery_health import failed_items, peer_health
from node.federation.outbox import retry_failed
from node.storage import store
from node.web.views import Pages, View

pages = Pages()


def _signing_key(view: View) -> dict[str, Any]:
    records = [r for r in view.node.keys.records if r.role == "signing"]
    current = next(r for r in records if r.status == "active")
    return {"since": current.created_at, "retired": sum(r.status != "active" for r in records)}


async def _outbox(view: View, verification: dict[str, Any] | None = None) -> web.Response:
    now = view.node.clock.now()
    peers, failed = await view.node.db.read(lambda conn: (peer_health(conn, now), failed_items(conn)))
    return view.render("admin_outbox.html", {"peers": peers, "failed": failed, "key": _signing_key(view),
                                             "verification": verification})


@pages.get("/admin/outbox", admin_only=True)
async def outbox(view: View) -> web.StreamResponse:
    return await _outbox(view)


@pages.post(r"/admin/outbox/{seq:\d{1,18}}/retry", admin_only=True)
async def retry(view: View) -> web.StreamResponse:
    seq = int(view.request.match_info["seq"])
    item = await view.node.transact(lambda conn, ctx: retry_failed(conn, ctx, seq))
    peer = view.node.peers.get(item.peer_node_id)
    return view.redirect("/admin/outbox", f"The delivery is queued again{f' for {peer.name}' if peer else ''}.")


@pages.post("/admin/outbox/receipts", admin_only=True)
async def verify_receipts(view: View) -> web.StreamResponse:
    me = view.node.me

    def check(conn: Any) -> dict[str, Any]:
        checks = evidence.verify_receipts(conn, me)
        names = {p.node_id: p.name for p in store.list_peers(conn)}
        bad = [{"peer": names.get(c.peer_node_id, "an organisation no longer known"), "problem": c.problem}
               for c in checks if not c.ok]
        return {"checked": len(checks), "valid": len(checks) - len(bad), "invalid": bad}

    # Read-only: the results are shown in the answer, not stored.
    return await _outbox(view, await view.node.db.read(check))


@pages.get("/admin/keys/rotate", "admin_rotate.html", admin_only=True)
async def rotate_form(view: View) -> dict[str, Any]:
    connections = await view.node.db.read(store.list_connections)
    return {"key": _signing_key(view), "connected": sorted({c.name for c in connections if c.state == "active"})}


@pages.post("/admin/keys/rotate", admin_only=True)
async def rotate(view: View) -> web.StreamResponse:
    told = await view.node.rotate_signing_key()
    return view.redirect("/admin/outbox", f"The signing key is rotated. {told} connected "
                                          f"organisation{'s are' if told != 1 else ' is'} being told of the new key.")
