"""Admin-API routes for making and ending connections with other nodes: invitations
(a referral URL and key to hand to another organisation), connecting with one or asking
a node's user to connect, accepting or declining a request, and disconnecting."""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from node.base.errors import ApiError
from node.crm.fields import Email, LongText, Name, ShortText, UrlText
from node.federation import handshake
from node.federation.connection_settings import ConnectionSettings, InboundSettings, check_settings
from node.federation.outbox import TxContext
from node.federation.runtime import Node
from node.http.api import Caller, In, Route
from node.http.json_answers import record_json
from node.storage import store
from node.storage.records import Connection, Invitation
from protocol import invitations as inv
from protocol.discovery import PeerKeys
from protocol.keys import fingerprint_of
from protocol.messages import Person


class InvitationIn(In):
    name: Name = Field(description="Who the invitation is for, e.g. 'Harbour Conveyancing'.")
    direction: Literal["send", "receive", "both"] = Field(
        default="receive", description="Seen from us: 'receive' means they will send us referrals."
    )
    ttl_s: int | None = Field(default=None, gt=0, le=90 * 24 * 3600, description="Expiry in seconds.")
    inbound: InboundSettings = Field(default_factory=InboundSettings,
                                     description="Where referrals from them land: workflow, stage, owner rule.")


class ConnectIn(In):
    referral_url: UrlText | None = Field(default=None, description="The referral URL the inviting admin gave you.")
    referral_key: UrlText | None = Field(default=None, description="The referral key that came with it.")
    url: UrlText | None = Field(default=None, description="Base URL of a node to ask (connection request).")
    email: Email | None = Field(default=None, description="Email of an active user there who will accept.")
    direction: Literal["send", "receive", "both"] = Field(
        default="send", description="Seen from us. With a referral URL, left out: whatever the invitation allows; "
                                    "given: narrows what it allows (never widens it).")
    message: LongText = ""
    name: ShortText | None = None


class DeclineIn(In):
    message: LongText = ""


class DisconnectIn(In):
    reason: LongText = ""


# --- invitations -------------------------------------------------------------------------


async def make_invitation(node: Node, caller: Caller, body: InvitationIn) -> tuple[Invitation, str, str]:
    """Check the inbound settings and make the invitation: the record, the referral URL
    and the referral key (shown once: only its hash is kept)."""
    def create(conn: sqlite3.Connection, ctx: TxContext) -> tuple[Invitation, str, str]:
        settings = ConnectionSettings(inbound=body.inbound)
        check_settings(conn, settings)
        return handshake.create_invitation(
            conn, ctx, name=body.name, base_url=node.base_url, direction=body.direction,
            settings=settings.model_dump(mode="json"), ttl_s=body.ttl_s, created_by=caller.email)

    return await node.transact(create)


async def create_invitation(request: web.Request, node: Node, caller: Caller, body: InvitationIn) -> Any:
    record, url, key = await make_invitation(node, caller, body)
    return {"invitation": record_json(record), "referral_url": url, "referral_key": key,
            "fingerprint": fingerprint_of(node.me)}


async def list_invitations(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    return {"invitations": [record_json(i) for i in await node.db.read(store.list_invitations)]}


async def revoke_invitation(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    invitation_id = request.match_info["id"]
    record = await node.transact(lambda conn, ctx: handshake.revoke_invitation(conn, ctx, invitation_id))
    return {"invitation": record_json(record)}


# --- connections -------------------------------------------------------------------------


async def discover(node: Node, body: ConnectIn, *,
                   expected_node_id: str | None = None) -> tuple[bytes, PeerKeys, inv.Invitation | None]:
    """The other node's verified discovery document (raw, and its keys) for a connect
    request, and the invitation it redeems, if any. A referral URL pins the node id (so
    the fingerprint); a plain address is pinned to ``expected_node_id`` when given (the
    console's confirm step: the node a person compared the fingerprint of)."""
    if body.referral_url and body.referral_key:
        invitation = inv.parse_referral(body.referral_url, body.referral_key)
        raw, keys = await node.fetch_discovery(invitation.base_url, expected_node_id=invitation.node_id)
        return raw, keys, invitation
    if body.url and body.email:
        raw, keys = await node.fetch_discovery(body.url, expected_node_id=expected_node_id)
        return raw, keys, None
    raise ApiError(400, "invalid", "give referral_url and referral_key, or url and email", field="referral_url")


def _asked_direction(body: ConnectIn, invitation: inv.Invitation | None) -> str:
    """What the connection-request asks for. Redeeming an invitation without saying, we
    ask for ``both``: the inviting node grants what its invitation allows of it (12.3)."""
    if invitation is not None and "direction" not in body.model_fields_set:
        return "both"
    return body.direction


async def start_connecting(node: Node, person: Person, body: ConnectIn, *,
                           expected_node_id: str | None = None) -> tuple[Connection, PeerKeys]:
    """Fetch the other node's keys and send it a connection request (see :func:`discover`)."""
    raw, keys, invitation = await discover(node, body, expected_node_id=expected_node_id)
    target: dict[str, Any] = {"invitation": invitation} if invitation else {"target_email": body.email}
    connection = await node.transact(lambda conn, ctx: handshake.start_connection(
        conn, ctx, peer=keys, peer_discovery=raw, our_discovery=node.discovery, requested_by=person,
        direction=_asked_direction(body, invitation), message=body.message, name=body.name,
        **target))
    return connection, keys


async def connect(request: web.Request, node: Node, caller: Caller, body: ConnectIn) -> Any:
    connection, keys = await start_connecting(node, caller.person, body)
    return {"connection": record_json(connection), "peer_fingerprint": fingerprint_of(keys.node_id),
            "peer_name": keys.name}


async def list_connections(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    return {"connections": [_connection_view(c) for c in await node.db.read(store.list_connections)]}


def _connection_view(c: Any) -> dict[str, Any]:
    return record_json(c) | {"peer_fingerprint": fingerprint_of(c.peer_node_id)}


async def get_connection(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    cid = request.match_info["id"]
    c = await node.db.read(lambda conn: store.get_connection(conn, cid))
    if c is None:
        raise ApiError(404, "unknown_subject", f"no connection {cid}")
    return {"connection": _connection_view(c)}


async def accept_connection(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    cid = request.match_info["id"]
    c = await node.transact(lambda conn, ctx: handshake.accept_request(conn, ctx, cid, accepted_by=caller.person))
    return {"connection": _connection_view(c)}


async def decline_connection(request: web.Request, node: Node, caller: Caller, body: DeclineIn) -> Any:
    cid = request.match_info["id"]
    c = await node.transact(lambda conn, ctx: handshake.decline_request(conn, ctx, cid, message=body.message))
    return {"connection": _connection_view(c)}


async def disconnect(request: web.Request, node: Node, caller: Caller, body: DisconnectIn) -> Any:
    cid = request.match_info["id"]
    c = await node.transact(lambda conn, ctx: handshake.disconnect(conn, ctx, cid, reason=body.reason))
    return {"connection": _connection_view(c)}


ROUTES: list[Route] = [
    Route("POST", "/api/v1/invitations", create_invitation, "Create an invitation (referral URL and key)",
          InvitationIn, admin_only=True, status=201),
    Route("GET", "/api/v1/invitations", list_invitations, "List invitations", admin_only=True),
    Route("POST", "/api/v1/invitations/{id}/revoke", revoke_invitation, "Revoke an open invitation",
          admin_only=True),
    Route("POST", "/api/v1/connections", connect,
          "Connect with a referral URL and key, or ask a node's user to connect", ConnectIn, admin_only=True,
          status=202),
    Route("GET", "/api/v1/connections", list_connections, "List connections and their states"),
    Route("GET", "/api/v1/connections/{id}", get_connection, "One connection"),
    Route("POST", "/api/v1/connections/{id}/accept", accept_connection, "Accept a pending connection request",
          admin_only=True),
    Route("POST", "/api/v1/connections/{id}/decline", decline_connection, "Decline a pending connection request",
          DeclineIn, admin_only=True),
    Route("POST", "/api/v1/connections/{id}/disconnect", disconnect, "Disconnect; the peer is told",
          DisconnectIn, admin_only=True),
]
