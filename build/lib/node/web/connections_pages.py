"""Connections with other organisations: the list (with the requests waiting for an answer
and the open invitations), and each connection's page: what it is, its inbound and
outbound settings, how deliveries to that node are going, and the admin's actions:
accept or decline a request (with a message the requester sees), disconnect with a
reason (after a confirmation step).

Permissions mirror the admin API's routes exactly: every role may read connections and
their settings (``GET /api/v1/connections``, ``/connections/{id}/settings``); invitations,
accepting, declining, disconnecting and changing settings are for admins. Brokers see no
admin action, and a POST from one is refused (403) by ``node.web.views`` before it runs.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from node.base.errors import ApiError
from node.crm.errors import CrmError
from node.federation import handshake
from node.federation.connection_health import delivery_health
from node.federation.connection_settings import ConnectionSettings, parse_settings, update_settings
from node.http.connections_api import DeclineIn, DisconnectIn
from node.storage import store
from node.storage.records import Connection
from node.web.connection_forms import (
    DIRECTION_WORDS,
    FIELD_WORDS,
    INBOUND,
    OPTIONAL_FIELDS,
    OUTBOUND,
    RULE_WORDS,
    RULES,
    choices,
    form_errors,
    inbound_form,
    inbound_problems,
    outbound_form,
    placement_words,
    values_from,
    values_of,
)
from node.web.views import Pages, View
from protocol import invitations as inv
from protocol.keys import fingerprint_of
from protocol.models import parse_ts

pages = Pages()

#: What a connection's state means, seen from our side (role, state) or any role (state).
STATE_WORDS: dict[tuple[str | None, str], str] = {
    ("requester", "requested"): "We asked them to connect; their admin has not answered yet.",
    ("responder", "requested"): "They ask to connect with us: an admin here must accept or decline.",
    ("responder", "responded"): "Accepted here; waiting for their node to confirm.",
    (None, "active"): "Connected: referrals can travel.",
    ("requester", "refused"): "Our request was declined, or their node refused it.",
    ("responder", "refused"): "We declined their request.",
    (None, "disconnected"): "Disconnected: nothing more travels.",
    (None, "expired"): "The request expired.",
}


def state_words(c: Connection) -> str:
    return STATE_WORDS.get((c.role, c.state)) or STATE_WORDS.get((None, c.state), c.state)


def _may_disconnect(c: Connection) -> bool:
    return c.state in ("active", "responded") or (c.role == "requester" and c.state == "requested")


def _users_by_email(conn: sqlite3.Connection) -> dict[str, str]:
    return {row["email"].lower(): row["name"] for row in conn.execute("SELECT email, name FROM users")}


@pages.get("/connections", "connections.html")
async def connections(view: View) -> dict[str, Any]:
    admin, now = view.user.is_admin, view.node.clock.now()

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        names = _users_by_email(conn)
        rows = [{"c": c, "fingerprint": fingerprint_of(c.peer_node_id), "direction": DIRECTION_WORDS[c.direction],
                 "for_user": names.get((c.target_email or "").lower(), c.target_email or "")}
                for c in reversed(store.list_connections(conn))]
        invitations = [i for i in store.list_invitations(conn) if admin and i.state == inv.InvitationState.OPEN
                       and parse_ts(i.expires_at) > now]
        return {"rows": rows, "invitations": invitations, "names": names,
                "pending": [r for r in rows if r["c"].role == "responder" and r["c"].state == "requested"]}

    return await view.node.db.read(read) | {"direction_words": DIRECTION_WORDS,
                                            "fingerprint": fingerprint_of(view.node.me)}


def _connection(conn: sqlite3.Connection, connection_id: str) -> Connection:
    c = store.get_connection(conn, connection_id)
    if c is None:
        raise ApiError(404, "unknown_subject", "There is no such connection on this node.")
    return c


async def _detail(view: View, *, values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                  status: int = 200) -> web.Response:
    cid, now = view.request.match_info["id"], view.node.clock.now()

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        c = _connection(conn, cid)
        peer = store.get_peer(conn, c.peer_node_id)
        settings = parse_settings(c.settings)
        invitation = store.get_invitation(conn, c.invitation_id) if c.invitation_id else None
        names = _users_by_email(conn)
        return {"c": c, "peer": peer, "settings": settings, "invitation": invitation,
                "health": delivery_health(conn, c.peer_node_id, now.timestamp()),
                "for_user": names.get((c.target_email or "").lower(), c.target_email or ""),
                "requested_by_name": names.get((c.requested_by or "").lower(), "") if c.role == "requester" else "",
                **choices(conn)}

    context = await view.node.db.read(read)
    c, settings = context["c"], context["settings"]
    users = {u.id: u.name for u in context["users"]}
    return view.render("connections_detail.html", {
        **context, "values": values_of(settings) | (values or {}), "errors": errors or {},
        "state_words": state_words(c), "direction": DIRECTION_WORDS[c.direction],
        "peer_fingerprint": fingerprint_of(c.peer_node_id), "fingerprint": fingerprint_of(view.node.me),
        "placement": placement_words(settings, context["workflows"]), "rules": RULES,
        "rule_words": RULE_WORDS[settings.inbound.assignment.rule], "user_names": users,
        "field_words": FIELD_WORDS, "optional_fields": OPTIONAL_FIELDS, "may_disconnect": _may_disconnect(c),
        "live": c.state in ("requested", "responded", "active"),
        "workflow_names": {w.id: w.name for w in context["workflows"]}}, status=status)


@pages.get("/connections/{id}")
async def connection(view: View) -> web.StreamResponse:
    return await _detail(view)


async def _save(view: View, change: dict[str, Any], fields: tuple[str, ...], what: str) -> web.StreamResponse:
    cid = view.request.match_info["id"]
    try:
        settings = ConnectionSettings.model_validate(change)
        await view.node.transact(lambda conn, ctx: update_settings(conn, cid, settings, now=ctx.ts))
    except (ValidationError, CrmError) as exc:
        await view.node.db.read(lambda conn: _connection(conn, cid))  # an unknown id is a 404, not a form error
        return await _detail(view, values=values_from(view, fields), errors=form_errors(exc, fields[0]), status=400)
    return view.redirect(f"/connections/{cid}", f"The {what} settings are saved.")


@pages.post("/connections/{id}/inbound", admin_only=True)
async def save_inbound(view: View) -> web.StreamResponse:
    if problems := inbound_problems(view):
        cid = view.request.match_info["id"]
        await view.node.db.read(lambda conn: _connection(conn, cid))
        return await _detail(view, values=values_from(view, INBOUND), errors=problems, status=400)
    return await _save(view, {"inbound": inbound_form(view)}, INBOUND, "inbound")


@pages.post("/connections/{id}/outbound", admin_only=True)
async def save_outbound(view: View) -> web.StreamResponse:
    return await _save(view, {"outbound": outbound_form(view)}, OUTBOUND, "outbound")


@pages.post("/connections/{id}/accept", admin_only=True)
async def accept(view: View) -> web.StreamResponse:
    cid = view.request.match_info["id"]
    c = await view.node.transact(lambda conn, ctx: handshake.accept_request(conn, ctx, cid,
                                                                            accepted_by=view.user.person))
    return view.redirect(f"/connections/{cid}", f"You accepted {c.name}. The connection is active as soon as "
                                                 "their node confirms.")


@pages.post("/connections/{id}/decline", admin_only=True, multiline=("message",))
async def decline(view: View) -> web.StreamResponse:
    cid = view.request.match_info["id"]
    try:
        body = DeclineIn(message=view.form.get("message", "").strip())
    except ValidationError as exc:
        return await _detail(view, values=values_from(view, ("message",)), errors=form_errors(exc, "message"),
                             status=400)
    c = await view.node.transact(lambda conn, ctx: handshake.decline_request(conn, ctx, cid, message=body.message))
    told = " They will see your message." if body.message else ""
    return view.redirect(f"/connections/{cid}", f"You declined {c.name}'s request.{told}")


@pages.get("/connections/{id}/disconnect", admin_only=True)
async def disconnect_form(view: View) -> web.StreamResponse:
    return await _disconnect_page(view, "", {})


async def _disconnect_page(view: View, reason: str, errors: dict[str, str], status: int = 200) -> web.Response:
    cid = view.request.match_info["id"]
    c = await view.node.db.read(lambda conn: _connection(conn, cid))
    return view.render("connections_disconnect.html", {
        "c": c, "reason": reason, "errors": errors, "may_disconnect": _may_disconnect(c),
        "withdraw": c.state == "requested"}, status=status)


@pages.post("/connections/{id}/disconnect", admin_only=True, multiline=("reason",))
async def disconnect(view: View) -> web.StreamResponse:
    cid = view.request.match_info["id"]
    reason = view.form.get("reason", "").strip()
    try:
        body = DisconnectIn(reason=reason)
    except ValidationError as exc:
        return await _disconnect_page(view, reason, form_errors(exc, "reason"), 400)
    before = await view.node.db.read(lambda conn: _connection(conn, cid))
    c = await view.node.transact(lambda conn, ctx: handshake.disconnect(conn, ctx, cid, reason=body.reason))
    done = "withdrew your request to" if before.state == "requested" else "disconnected from"
    return view.redirect(f"/connections/{cid}", f"You {done} {c.name}. Their node is told.")
