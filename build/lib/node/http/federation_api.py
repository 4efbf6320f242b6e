"""Admin-API routes for this node's part in the federation once connected: who it is and
its signing key (rotation tells every peer), referrals sent and received over connections
with their status reports (referring a CRM deal is in :mod:`node.http.referral_api`), and
delivery: the outbox and the receipts peers signed."""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import ConfigDict, Field

from node.base.errors import ApiError
from node.base.ids import new_id
from node.base.inputs import NotNull, required_in_document
from node.crm.fields import Id, LongText, ShortText
from node.federation import evidence, referrals
from node.federation.outbox import TxContext, retry_failed
from node.federation.runtime import Node
from node.http.api import Caller, In, Route, path_params, query_model, whole_number
from node.http.crm_queries import DEFAULT_LIMIT, Limit, Offset
from node.http.json_answers import record_json
from node.storage import store
from protocol.keys import fingerprint_of
from protocol.messages import Consent, ContactProfile, DealSummary, Person, ReferralOffer
from protocol.models import Ident, Token


class ReferralIn(In):
    model_config = ConfigDict(json_schema_extra=required_in_document("consent"))

    connection_id: Id
    referral_type: Token
    deal: DealSummary
    contacts: list[ContactProfile] = Field(min_length=1, max_length=20)
    shared_fields: list[ShortText] = Field(default_factory=list)
    owner: Person | None = None
    referring_agent: Person
    message: LongText = ""
    #: Required: absent, the answer is consent_required (not a bare "missing").
    consent: Annotated[Consent | None, NotNull()] = None
    referral_id: Ident | None = None


class SideQuery(In):
    side: Literal["sender", "receiver"] | None = None
    limit: Limit = DEFAULT_LIMIT
    offset: Offset = 0


class OutboxQuery(In):
    state: Literal["pending", "delivered", "failed"] | None = None
    #: A connection's or referral's id: only the envelopes sent about it.
    subject_id: Id | None = None


class StatusIn(In):
    status: Literal["accepted", "declined", "in-progress", "won", "lost", "withdrawn"]
    stage: ShortText | None = None
    reason: LongText | None = None


# --- this node -----------------------------------------------------------------------------


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


async def rotate_keys(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    count = await node.rotate_signing_key()
    return {"signing_kid": node.keys.signing.kid, "peers_notified": count}


# --- referrals -----------------------------------------------------------------------------


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

    referral = await node.transact(send)
    return {"referral": record_json(referral)}


async def list_referrals(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    q = query_model(request, SideQuery)
    found = await node.db.read(lambda conn: store.list_referrals(conn, q.side, limit=q.limit, offset=q.offset))
    return {"referrals": [record_json(r) for r in found], "limit": q.limit, "offset": q.offset}


async def get_referral(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    local_id = request.match_info["id"]

    def read(conn: sqlite3.Connection) -> Any:
        r = store.get_referral_local(conn, local_id)
        if r is None:
            raise ApiError(404, "unknown_subject", f"no referral {local_id}")
        return r, store.list_events(conn, r.side, r.peer_node_id, r.id)

    referral, events = await node.db.read(read)
    return {"referral": record_json(referral), "timeline": [record_json(e) for e in events]}


async def referral_status(request: web.Request, node: Node, caller: Caller, body: StatusIn) -> Any:
    local_id = request.match_info["id"]
    r = await node.transact(lambda conn, ctx: referrals.report_status(conn, ctx, local_id, body.status,
                                                                      stage=body.stage, reason=body.reason))
    return {"referral": record_json(r)}


# --- delivery ------------------------------------------------------------------------------


async def list_outbox(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    query = query_model(request, OutboxQuery)
    items = await node.db.read(lambda conn: store.list_outbox(conn, state=query.state, subject_id=query.subject_id))
    return {"outbox": [record_json(i) | {"has_receipt": i.receipt is not None} for i in items]}


async def retry_outbox(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    seq = path_params(request)["seq"]
    item = await node.transact(lambda conn, ctx: retry_failed(conn, ctx, seq))
    return {"outbox": record_json(item)}


async def verify_receipts(request: web.Request, node: Node, caller: Caller, body: None) -> Any:
    checks = await node.db.read(lambda conn: evidence.verify_receipts(conn, node.me))
    return {"checked": len(checks), "valid": sum(c.ok for c in checks),
            "invalid": [c.__dict__ for c in checks if not c.ok]}


ROUTES: list[Route] = [
    Route("GET", "/api/v1/node", get_node, "This node's id, fingerprint, name and URL"),
    Route("POST", "/api/v1/referrals", send_referral, "Refer a client to a connected organisation",
          ReferralIn, status=202),
    Route("GET", "/api/v1/referrals", list_referrals,
          "List referrals sent and received, oldest first: ?side, limit (default 100), offset", query=SideQuery),
    Route("GET", "/api/v1/referrals/{id}", get_referral, "One referral with its status timeline"),
    Route("POST", "/api/v1/referrals/{id}/status", referral_status,
          "Report progress on a received referral (sent back to the referrer)", StatusIn),
    Route("GET", "/api/v1/outbox", list_outbox,
          "Outgoing envelopes and their delivery state (?state=, ?subject_id= a connection or referral)",
          admin_only=True, query=OutboxQuery),
    Route("POST", "/api/v1/outbox/{seq}/retry", retry_outbox, "Retry a failed delivery", admin_only=True,
          params={"seq": whole_number(1)}),
    Route("POST", "/api/v1/receipts/verify", verify_receipts, "Re-verify every stored delivery receipt",
          admin_only=True),
    Route("POST", "/api/v1/keys/rotate", rotate_keys, "Rotate the signing key and tell every peer",
          admin_only=True),
]
