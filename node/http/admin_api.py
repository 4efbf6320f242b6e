"""The admin API: JSON over HTTP under /api/v1, bearer-token authentication (tokens are
stored hashed), described by an OpenAPI document at /api/v1/openapi.json.

Every route is declared once in ``ROUTES`` with its input model; the OpenAPI document is
built from that list, so the two cannot drift. Handlers are thin: parse, call a domain
function in a transaction, answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from node.base.errors import HTTP_STATUS, ApiError, api_error_response
from node.base.ids import new_id
from node.crm import store as crm_store
from node.crm.errors import CrmError
from node.federation import evidence, handshake, referrals
from node.federation.connection_settings import ConnectionSettings, InboundSettings, check_settings
from node.federation.outbox import TxContext, reseal
from node.federation.runtime import Node
from node.http.appkeys import NODE
from node.storage import store
from protocol import invitations as inv
from protocol.encoding import b64u_encode
from protocol.envelope import digest
from protocol.errors import LocalProtocolError, ProtocolError
from protocol.keys import fingerprint_of
from protocol.messages import Consent, ContactProfile, DealSummary, Person, ReferralOffer
from protocol.models import Ident, Token, parse_ts
from protocol.wire import MAX_ENVELOPE_AGE_S, ErrorCode

TOKEN_PREFIX = "rnt_"  # noqa: S105 (a prefix, not a secret)
#: CRM error codes as HTTP statuses.
CRM_STATUS = {"not_found": 404, "invalid": 400, "conflict": 409}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + b64u_encode(os.urandom(32))


# --- input models ----------------------------------------------------------------------


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InvitationIn(In):
    name: str = Field(min_length=1, max_length=200, description="Who the invitation is for, e.g. 'Harbour Conveyancing'.")
    direction: Literal["send", "receive", "both"] = Field(
        default="receive", description="Seen from us: 'receive' means they will send us referrals."
    )
    ttl_s: int | None = Field(default=None, gt=0, le=90 * 24 * 3600, description="Expiry in seconds.")
    inbound: InboundSettings = Field(default_factory=InboundSettings,
                                     description="Where referrals from them land: workflow, stage, owner rule.")


class ConnectIn(In):
    referral_url: str | None = Field(default=None, description="The referral URL the inviting admin gave you.")
    referral_key: str | None = Field(default=None, description="The referral key that came with it.")
    url: str | None = Field(default=None, description="Base URL of a node to ask (connection request).")
    email: str | None = Field(default=None, description="Email of an active user there who will accept.")
    direction: Literal["send", "receive", "both"] = Field(default="send", description="Seen from us.")
    message: str = Field(default="", max_length=8000)
    name: str | None = Field(default=None, max_length=200)


class DeclineIn(In):
    message: str = Field(default="", max_length=8000)


class DisconnectIn(In):
    reason: str = Field(default="", max_length=8000)


class ReferralIn(In):
    connection_id: str
    referral_type: Token
    deal: DealSummary
    contacts: list[ContactProfile] = Field(min_length=1, max_length=20)
    shared_fields: list[str] = Field(default_factory=list)
    owner: Person | None = None
    referring_agent: Person
    message: str = Field(default="", max_length=8000)
    consent: Consent | None = None
    referral_id: Ident | None = None


class StatusIn(In):
    status: Literal["accepted", "declined", "in-progress", "won", "lost", "withdrawn"]
    stage: str | None = Field(default=None, max_length=200)
    reason: str | None = Field(default=None, max_length=8000)


class UserIn(In):
    email: str = Field(pattern=r"^[^@\s]{1,64}@[^@\s]{1,253}$")
    name: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "broker"] = "broker"


class TokenIn(In):
    label: str = Field(default="", max_length=200)
    user_id: str | None = None


class Empty(In):
    pass


# --- plumbing --------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    id: str
    email: str
    name: str
    role: str

    @property
    def person(self) -> Person:
        return Person(name=self.name, email=self.email)


Handler = Callable[[web.Request, Node, Caller, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    admin_only: bool = False
    status: int = 200


def _parse(model: type[BaseModel], raw: bytes) -> BaseModel:
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise ApiError(400, "malformed", "the body is not JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise ApiError(400, "invalid", f"{where}: {first['msg'].removeprefix('Value error, ')}", field=where,
                       errors=[{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                               for e in exc.errors()[:20]]) from None


def query_params(request: web.Request, *names: str) -> dict[str, str]:
    """The query string, or a 400 naming a parameter that is unknown or given twice (a
    misspelt filter must not quietly return everything)."""
    for name in request.query:
        if name not in names:
            takes = f"use {', '.join(names)}" if names else "this route takes none"
            raise ApiError(400, "invalid", f"unknown query parameter {name!r}; {takes}", field=name)
        if len(request.query.getall(name)) > 1:
            raise ApiError(400, "invalid", f"query parameter {name} is given more than once; give it once",
                           field=name)
    return dict(request.query)


async def _authenticate(request: web.Request, node: Node) -> Caller:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise ApiError(401, "unauthenticated", "send 'Authorization: Bearer <token>'")
    token_hash = hash_token(header[7:].strip())
    user = await node.db.read(lambda conn: store.token_user(conn, token_hash))
    if user is None:
        raise ApiError(401, "unauthenticated", "that token is unknown or revoked")
    return Caller(**user)


def _wrap(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        node = request.app[NODE]
        try:
            caller = await _authenticate(request, node)
            if route.admin_only and caller.role != "admin":
                raise ApiError(403, "forbidden", "this needs an admin")
            body = _parse(route.body, await request.read()) if route.body is not None else None
            result = await route.handler(request, node, caller, body)
        except ApiError as exc:
            return api_error_response(exc)
        except ProtocolError as exc:
            return api_error_response(ApiError(HTTP_STATUS.get(exc.code, 400), exc.code.value, exc.message))
        except CrmError as exc:
            status = CRM_STATUS.get(exc.code, 400)
            return api_error_response(ApiError(status, exc.code, exc.message, field=exc.field))
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response(result, status=route.status, dumps=lambda v: json.dumps(v, default=str))

    return handle


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude={"discovery", "body", "receipt"})


async def _tx(node: Node, fn: Callable[[sqlite3.Connection, TxContext], Any]) -> Any:
    return await node.transact(fn)


# --- handlers ----------------------------------------------------------------------------


async def get_node(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    return {
        "node_id": node.me,
        "fingerprint": fingerprint_of(node.me),
        "name": node.config.org_name,
        "base_url": node.base_url,
        "suites": [s.value for s in node.suites],
        # With inbox_workers > 0: the inbox fronts configured, and those connected.
        "inbox_fronts": node.fronts.status() if node.fronts is not None else None,
    }


async def create_invitation(request: web.Request, node: Node, caller: Caller, body: InvitationIn) -> Any:
    def create(conn: sqlite3.Connection, ctx: TxContext) -> Any:
        settings = ConnectionSettings(inbound=body.inbound)
        check_settings(conn, settings)
        return handshake.create_invitation(
            conn, ctx, name=body.name, base_url=node.base_url, direction=body.direction,
            settings=settings.model_dump(mode="json"), ttl_s=body.ttl_s, created_by=caller.email)

    record, url, key = await _tx(node, create)
    return {"invitation": _dump(record), "referral_url": url, "referral_key": key,
            "fingerprint": fingerprint_of(node.me)}


async def list_invitations(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    return {"invitations": [_dump(i) for i in await node.db.read(store.list_invitations)]}


async def revoke_invitation(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    invitation_id = request.match_info["id"]
    record = await _tx(node, lambda conn, ctx: handshake.revoke_invitation(conn, ctx, invitation_id))
    return {"invitation": _dump(record)}


async def connect(request: web.Request, node: Node, caller: Caller, body: ConnectIn) -> Any:
    if body.referral_url and body.referral_key:
        invitation = inv.parse_referral(body.referral_url, body.referral_key)
        raw, keys = await node.fetch_discovery(invitation.base_url, expected_node_id=invitation.node_id)
        target = {"invitation": invitation}
    elif body.url and body.email:
        invitation = None
        raw, keys = await node.fetch_discovery(body.url, expected_node_id=None)
        target = {"target_email": body.email}
    else:
        raise ApiError(400, "invalid", "give referral_url and referral_key, or url and email", field="referral_url")
    connection = await _tx(node, lambda conn, ctx: handshake.start_connection(
        conn, ctx, peer=keys, peer_discovery=raw, our_discovery=node.discovery, requested_by=caller.person,
        direction=body.direction if invitation is None else "send", message=body.message, name=body.name,
        **target))
    return {"connection": _dump(connection), "peer_fingerprint": fingerprint_of(keys.node_id),
            "peer_name": keys.name}


async def list_connections(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    return {"connections": [_connection_view(c) for c in await node.db.read(store.list_connections)]}


def _connection_view(c: Any) -> dict[str, Any]:
    return _dump(c) | {"peer_fingerprint": fingerprint_of(c.peer_node_id)}


async def get_connection(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    cid = request.match_info["id"]
    c = await node.db.read(lambda conn: store.get_connection(conn, cid))
    if c is None:
        raise ApiError(404, "unknown_subject", f"no connection {cid}")
    return {"connection": _connection_view(c)}


async def accept_connection(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    cid = request.match_info["id"]
    c = await _tx(node, lambda conn, ctx: handshake.accept_request(conn, ctx, cid, accepted_by=caller.person))
    return {"connection": _connection_view(c)}


async def decline_connection(request: web.Request, node: Node, caller: Caller, body: DeclineIn) -> Any:
    cid = request.match_info["id"]
    c = await _tx(node, lambda conn, ctx: handshake.decline_request(conn, ctx, cid, message=body.message))
    return {"connection": _connection_view(c)}


async def disconnect(request: web.Request, node: Node, caller: Caller, body: DisconnectIn) -> Any:
    cid = request.match_info["id"]
    c = await _tx(node, lambda conn, ctx: handshake.disconnect(conn, ctx, cid, reason=body.reason))
    return {"connection": _connection_view(c)}


async def send_referral(request: web.Request, node: Node, caller: Caller, body: ReferralIn) -> Any:
    if body.consent is None:
        raise ApiError(400, "consent_required", "record the client's consent (consent.*) before referring",
                       field="consent")
    offer = ReferralOffer(
        referral_id=body.referral_id or new_id("rfl"),
        connection_id=body.connection_id,
        referral_type=body.referral_type,
        deal=body.deal,
        contacts=body.contacts,
        shared_fields=body.shared_fields,
        owner=body.owner,
        referring_agent=body.referring_agent,
        message=body.message,
        consent=body.consent,
        sent_at=node.context().ts,
    )

    def send(conn: sqlite3.Connection, ctx: TxContext) -> Any:
        connection = store.get_connection(conn, offer.connection_id)
        if body.referral_id is not None and connection is not None:
            taken = store.get_referral(conn, "sender", connection.peer_node_id, body.referral_id)
            if taken is not None:
                raise ApiError(409, "conflict", f"referral_id {body.referral_id} is already used by referral "
                               f"{taken.local_id}; leave referral_id out to get a new one", field="referral_id")
        return referrals.send_offer(conn, ctx, offer)

    referral = await _tx(node, send)
    return {"referral": _dump(referral)}


async def list_referrals(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    side = query_params(request, "side").get("side")
    if side not in (None, "sender", "receiver"):
        raise ApiError(400, "invalid", "side is sender or receiver", field="side")
    return {"referrals": [_dump(r) for r in await node.db.read(lambda conn: store.list_referrals(conn, side))]}


async def get_referral(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    local_id = request.match_info["id"]

    def read(conn: sqlite3.Connection) -> Any:
        r = store.get_referral_local(conn, local_id)
        if r is None:
            raise ApiError(404, "unknown_subject", f"no referral {local_id}")
        return r, store.list_events(conn, r.side, r.peer_node_id, r.id)

    referral, events = await node.db.read(read)
    return {"referral": _dump(referral), "timeline": [_dump(e) for e in events]}


async def referral_status(request: web.Request, node: Node, caller: Caller, body: StatusIn) -> Any:
    local_id = request.match_info["id"]
    r = await _tx(node, lambda conn, ctx: referrals.report_status(conn, ctx, local_id, body.status,
                                                                  stage=body.stage, reason=body.reason))
    return {"referral": _dump(r)}


async def list_outbox(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    state = query_params(request, "state").get("state")
    if state not in (None, "pending", "delivered", "failed"):
        raise ApiError(400, "invalid", "state is pending, delivered or failed", field="state")
    items = await node.db.read(lambda conn: store.list_outbox(conn, state=state))
    return {"outbox": [_dump(i) | {"has_receipt": i.receipt is not None} for i in items]}


async def retry_outbox(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    try:
        seq = int(request.match_info["seq"])
    except ValueError:
        raise ApiError(400, "invalid", "seq is a number", field="seq") from None

    def retry(conn: sqlite3.Connection, ctx: TxContext) -> Any:
        item = store.get_outbox(conn, seq)
        if item is None:
            raise LocalProtocolError(ErrorCode.UNKNOWN_SUBJECT, f"no outbox item {seq}")
        if item.state != "failed":
            raise LocalProtocolError(ErrorCode.INVALID_TRANSITION, f"item {seq} is {item.state}, not failed")
        deadline = ctx.now.timestamp() + ctx.config.delivery_deadline_s
        age = ctx.now.timestamp() - parse_ts(item.created_at).timestamp()
        if age > MAX_ENVELOPE_AGE_S - ctx.config.delivery_deadline_s:
            body, envelope_id = reseal(conn, ctx, item, ctx.peer(conn, item.peer_node_id))
            store.requeue(conn, seq, deadline_at=deadline, body=body, envelope_id=envelope_id, sha256=digest(body))
        else:
            store.requeue(conn, seq, deadline_at=deadline)
        store.set_peer_retry(conn, item.peer_node_id, 0, 0.0)
        ctx.effects.poke.add(item.peer_node_id)
        return store.get_outbox(conn, seq)

    item = await _tx(node, retry)
    return {"outbox": _dump(item)}


async def verify_receipts(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    checks = await node.db.read(lambda conn: evidence.verify_receipts(conn, node.me))
    return {"checked": len(checks), "valid": sum(c.ok for c in checks),
            "invalid": [c.__dict__ for c in checks if not c.ok]}


async def rotate_keys(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    def rotate(conn: sqlite3.Connection, ctx: TxContext) -> int:
        # Switch keys and queue the announcements in one step of the write batch: writes
        # before it seal with the old key, writes after it with the new one, so each
        # peer's in-order queue carries the announcement exactly between the two.
        previous = node.keys.signing
        node.keys.rotate_signing()
        node.refresh_discovery()
        ctx.effects.own_keys = True
        return handshake.announce_rotation(conn, ctx, node.discovery, previous)

    count = await _tx(node, rotate)
    return {"signing_kid": node.keys.signing.kid, "peers_notified": count}


async def create_user(request: web.Request, node: Node, caller: Caller, body: UserIn) -> Any:
    user = await _tx(node, lambda conn, ctx: crm_store.create_user(conn, body.email, body.name, body.role, ctx.now))
    return {"user": user.model_dump(mode="json")}


async def list_users(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    return {"users": [u.model_dump(mode="json") for u in await node.db.read(crm_store.list_users)]}


async def create_token(request: web.Request, node: Node, caller: Caller, body: TokenIn) -> Any:
    token = new_token()
    user_id = body.user_id or caller.id

    def insert(conn: sqlite3.Connection, ctx: TxContext) -> None:
        row = conn.execute("SELECT active FROM users WHERE id = ?", (user_id,)).fetchone()
        if row is None:
            raise ApiError(404, "unknown_subject", f"no user {user_id}", field="user_id")
        if not row[0]:
            raise ApiError(400, "invalid", f"user {user_id} is not active; reactivate them before giving them"
                           " a token", field="user_id")
        store.insert_token(conn, id=new_id("tok"), user_id=user_id, token_hash=hash_token(token), label=body.label,
                           now=ctx.ts)

    await _tx(node, insert)
    return {"token": token, "note": "shown once; only its hash is stored"}


ROUTES: list[Route] = [
    Route("GET", "/api/v1/node", get_node, "This node's id, fingerprint, name and URL"),
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
    Route("POST", "/api/v1/referrals", send_referral, "Refer a client to a connected organisation",
          ReferralIn, status=202),
    Route("GET", "/api/v1/referrals", list_referrals, "List referrals sent and received"),
    Route("GET", "/api/v1/referrals/{id}", get_referral, "One referral with its status timeline"),
    Route("POST", "/api/v1/referrals/{id}/status", referral_status,
          "Report progress on a received referral (sent back to the referrer)", StatusIn),
    Route("GET", "/api/v1/outbox", list_outbox, "Outgoing envelopes and their delivery state", admin_only=True),
    Route("POST", "/api/v1/outbox/{seq}/retry", retry_outbox, "Retry a failed delivery", admin_only=True),
    Route("POST", "/api/v1/receipts/verify", verify_receipts, "Re-verify every stored delivery receipt",
          admin_only=True),
    Route("POST", "/api/v1/keys/rotate", rotate_keys, "Rotate the signing key and tell every peer",
          admin_only=True),
    Route("POST", "/api/v1/users", create_user, "Add a user", UserIn, admin_only=True, status=201),
    Route("GET", "/api/v1/users", list_users, "List users", admin_only=True),
    Route("POST", "/api/v1/tokens", create_token, "Create an API token (shown once)", TokenIn, admin_only=True,
          status=201),
]


def openapi(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for route in routes:
        op: dict[str, Any] = {
            "summary": route.summary,
            "security": [{"bearer": []}],
            "responses": {
                str(route.status): {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                "400": {"description": "Invalid input: error.code, error.message, error.field"},
                "401": {"description": "Missing or unknown token"},
                "403": {"description": "Not allowed for this user"},
                "404": {"description": "Unknown id"},
                "409": {"description": "Not allowed in the current state"},
            },
        }
        params = [p[1:-1] for p in route.path.split("/") if p.startswith("{")]
        if params:
            op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                                for p in params]
        if route.body is not None:
            schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                schemas[name] = sub
            schemas[route.body.__name__] = schema
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}}}}
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "referral-node admin API", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def add_routes(app: web.Application, routes: list[Route]) -> None:
    for route in routes:
        app.router.add_route(route.method, route.path, _wrap(route))
    document = openapi(routes)

    async def serve_openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/api/v1/openapi.json", serve_openapi)


