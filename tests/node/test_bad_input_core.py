"""Bad input on every admin-API route outside the CRM, table-driven, against real nodes.

The same method as ``crm_api/test_bad_input.py`` (whose ``Case`` machinery this reuses):
each case names its route, sends something wrong and says which status it expects and
what the error message (or ``error.field``) must mention. Every case runs against node
Alpha, connected to node Beta, with a third node Gamma to give ids nobody at Alpha
knows; after each case every table of Alpha (and its signing key) must be exactly as it
was: a refused call leaves nothing half-written. No token, an unknown token and (on
admin routes) a broker's token are tried on every route.

``test_the_table_covers_every_route`` makes a new route fail until it gets cases, as in
the CRM table; ``test_every_route_has_a_bad_input_table`` makes sure this table and the
CRM one together cover exactly the routes the node serves.
"""

from __future__ import annotations

import dataclasses
from typing import Any, get_args

from conftest import RunningNode, wait_for
from crm_api.conftest import NONE, Csv, call, token_for
from crm_api.test_bad_input import ROUTES as CRM_ROUTES
from crm_api.test_bad_input import Case, case, problem_with, token_cases, with_ids
from test_two_nodes import referral_body

from node.base.errors import HTTP_STATUS
from node.crm.errors import CrmErrorCode
from node.http import (
    api,
    connections_api,
    federation_api,
    opportunities,
    referral_api,
    reporting,
    routes,
    users_api,
)
from node.web import views
from protocol.wire import ErrorCode

ROUTES = {
    f"{r.method} {r.path}": r
    for r in [
        *federation_api.ROUTES,
        *connections_api.ROUTES,
        *(r for r in users_api.ROUTES if r.path == "/api/v1/tokens"),
        *referral_api.ROUTES,
        *opportunities.ROUTES,
        *reporting.ROUTES,
    ]
}

ADMIN_ONLY = {
    "POST /api/v1/invitations", "GET /api/v1/invitations", "POST /api/v1/invitations/{id}/revoke",
    "POST /api/v1/connections", "POST /api/v1/connections/{id}/accept",
    "POST /api/v1/connections/{id}/decline", "POST /api/v1/connections/{id}/disconnect",
    "PUT /api/v1/connections/{id}/settings", "PATCH /api/v1/connections/{id}/settings", "GET /api/v1/outbox", "POST /api/v1/outbox/{seq}/retry",
    "POST /api/v1/receipts/verify", "POST /api/v1/keys/rotate", "POST /api/v1/tokens",
}  # fmt: skip

#: Routes that take no input at all: only the generated token cases apply.
AUTH_ONLY = {
    "GET /api/v1/node": "takes no input (federation_api.get_node)",
    "GET /api/v1/invitations": "takes no input (connections_api.list_invitations)",
    "GET /api/v1/connections": "takes no input (connections_api.list_connections)",
    "POST /api/v1/receipts/verify": "takes no input (federation_api.verify_receipts)",
    "POST /api/v1/keys/rotate": "takes no input (federation_api.rotate_keys)",
}

#: Path ids that are counters, not names: another node's seq is just a number, so the
#: 404 case uses one that this node has not reached.
NUMERIC_IDS = {"POST /api/v1/outbox/{seq}/retry": "{no_seq}"}

CODES = {
    400: {"invalid", "malformed", "consent_required", "field_not_allowed", "fingerprint_mismatch"},
    401: {"unauthenticated"},
    403: {"forbidden", "not_connected", "unknown_sender", "invitation_invalid"},
    404: {"not_found", "unknown_subject"},
    409: {"conflict", "invalid_transition", "not_connected"},
}  # fmt: skip

TABLES = (
    "users", "api_tokens", "peers", "peer_keys", "invitations", "connections", "outbox", "inbox",
    "referrals", "referral_events", "deferred_referrals", "opportunities", "workflows", "stages",
    "deals", "deal_contacts", "deal_moves", "contacts", "notes", "documents", "assignment_cursor",
    "web_sessions", "password_links", "signin_failures", "mail_queue", "user_mail_off", "health_probe",
    "partner_profiles", "partner_brokers", "deal_partners", "note_shares", "partner_documents", "partner_activity",
    "portal_settings", "partner_mail_on", "partner_consents", "email_changes", "connection_relations",
    "enterprise_partner_sends",
    # the client portal (migration 60)
    "compliance_labels", "portal_org", "client_portal_settings", "portal_flows", "portal_videos", "client_access",
    "client_passcodes", "client_passcode_requests", "client_sessions", "client_requests", "client_files",
    "client_acks", "client_messages", "client_events", "sms_queue",
    # kept by triggers (migrations 41 and 42): the search indexes, and the report's counts
    "search_pending", "referral_tally", "referral_reached",
    *(f"{t}_search{part}" for t in ("contacts", "deals") for part in ("", "_data", "_idx", "_docsize", "_config")),
    # the search's order and a deal's contacts' names (migration 70)
    "search_disorder", *(f"deal_people{part}" for part in ("", "_data", "_idx", "_content", "_docsize", "_config")),
)  # fmt: skip
#: Tables without a rowid, read in the order of their key.
WITHOUT_ROWID = {"search_pending": "1, 2", "referral_tally": "1, 2, 3, 4, 5, 6", "referral_reached": "1, 2",
                 "contacts_search_idx": "1, 2", "contacts_search_config": "1", "deals_search_idx": "1, 2",
                 "deals_search_config": "1", "search_disorder": "1, 2", "deal_people_idx": "1, 2",
                 "deal_people_config": "1"}

NOT_JSON = object()  # a body that is not JSON


def gone(route: str, url: str, says: str, body: Any = None, **kw: Any) -> Case:
    """Another node's id (one nobody here has) in the path: 404 naming it."""
    return case(route, "an id of another node", 404, says, url, body, **kw)


DISCLOSURE = "We share your details with our partner so they can contact you."


def consent(*contacts: str, **overrides: Any) -> dict[str, Any]:
    return {"contact_ids": list(contacts), "method": "verbal", "disclosure_version": "privacy-2026-07",
            "disclosure_text": DISCLOSURE, **overrides}  # fmt: skip


REFER = {"connection_id": "{conn}", "consent": consent("{contact}")}
INV, CON, REF = "/api/v1/invitations", "/api/v1/connections", "/api/v1/referrals"
OPP, DFR, REP = "/api/v1/opportunities", "/api/v1/deferred", "/api/v1/reports/referrals"
DEALS = "/api/v1/deals"

# fmt: off
CASES: list[Case] = [
    # -- invitations
    case(f"POST {INV}", "no name", 400, "name: Field required", body={}, field="name"),
    case(f"POST {INV}", "blank name", 400, "name", body={"name": ""}, field="name"),
    case(f"POST {INV}", "unknown direction", 400, "direction", body={"name": "X", "direction": "out"},
         field="direction"),
    case(f"POST {INV}", "ttl of zero", 400, "ttl_s", body={"name": "X", "ttl_s": 0}, field="ttl_s"),
    case(f"POST {INV}", "ttl beyond 90 days", 400, "ttl_s", body={"name": "X", "ttl_s": 91 * 86400},
         field="ttl_s"),
    case(f"POST {INV}", "ttl as words", 400, "ttl_s", body={"name": "X", "ttl_s": "a week"}, field="ttl_s"),
    case(f"POST {INV}", "unknown field", 400, "expires: Extra inputs",
         body={"name": "X", "expires": "2027-01-01"}, field="expires"),
    case(f"POST {INV}", "not JSON", 400, "not JSON", body=NOT_JSON),
    case(f"POST {INV}", "a list, not an object", 400, "(body)", body=["X"]),
    case(f"POST {INV}", "workflow of another node", 404, "workflow '{b_wf}' not found",
         body=with_ids({"name": "X", "inbound": {"workflow_id": "{b_wf}"}}), field="inbound.workflow_id"),
    case(f"POST {INV}", "a stage of another workflow", 400, "is not in workflow 'Sales'",
         body=with_ids({"name": "X", "inbound": {"workflow_id": "{wf}", "stage_id": "{other_stage}"}}),
         field="inbound.stage_id"),
    case(f"POST {INV}", "a stage without its workflow", 400, "needs its workflow_id",
         body=with_ids({"name": "X", "inbound": {"stage_id": "{stage}"}}), field="inbound.stage_id"),
    case(f"POST {INV}", "fixed owner missing", 400, "needs user_id",
         body={"name": "X", "inbound": {"assignment": {"rule": "fixed"}}}, field="inbound.assignment.user_id"),
    case(f"POST {INV}", "fixed owner of another node", 404, "user '{b_user}' not found",
         body=with_ids({"name": "X", "inbound": {"assignment": {"rule": "fixed", "user_id": "{b_user}"}}})),
    case(f"POST {INV}", "round robin among nobody", 400, "needs user_ids",
         body={"name": "X", "inbound": {"assignment": {"rule": "round_robin"}}}),
    case(f"POST {INV}", "unknown assignment rule", 400, "inbound.assignment.rule",
         body={"name": "X", "inbound": {"assignment": {"rule": "lottery"}}}),
    gone(f"POST {INV}/{{id}}/revoke", INV + "/{b_inv}/revoke", "no invitation {b_inv}"),
    case(f"POST {INV}/{{id}}/revoke", "a used invitation", 409, "is used", INV + "/{inv_used}/revoke"),
    case(f"POST {INV}/{{id}}/revoke", "a revoked invitation", 409, "is revoked", INV + "/{inv_revoked}/revoke"),
    # -- connecting
    case(f"POST {CON}", "nothing to connect with", 400, "give referral_url and referral_key, or url and email",
         body={}, field="referral_url"),
    case(f"POST {CON}", "a URL without its key", 400, "give referral_url and referral_key",
         body=with_ids({"referral_url": "{b_inv_url}"})),
    case(f"POST {CON}", "a url without an email", 400, "or url and email", body=with_ids({"url": "{b_url}"})),
    case(f"POST {CON}", "not a referral URL", 403, "not a referral URL",
         body={"referral_url": "http://127.0.0.1:1/hello", "referral_key": "rnk1_x"}),
    case(f"POST {CON}", "a damaged key", 403, "referral key is damaged",
         body=with_ids({"referral_url": "{b_inv_url}", "referral_key": "rnk1_short"})),
    case(f"POST {CON}", "a URL pinned to another node", 400, "but {g_node} was expected",
         body=with_ids({"referral_url": "{b_inv_url_wrong_node}", "referral_key": "{b_inv_key}"})),
    case(f"POST {CON}", "our own invitation", 400, "cannot connect to itself",
         body=with_ids({"referral_url": "{inv_open_url}", "referral_key": "{inv_open_key}"})),
    case(f"POST {CON}", "a node that does not answer", 403, "cannot reach",
         body={"url": "http://127.0.0.1:1", "email": "x@example.com"}),
    case(f"POST {CON}", "unknown direction", 400, "direction",
         body=with_ids({"url": "{b_url}", "email": "x@example.com", "direction": "sideways"}), field="direction"),
    case(f"POST {CON}", "email as a number", 400, "email", body=with_ids({"url": "{b_url}", "email": 5}),
         field="email"),
    case(f"POST {CON}", "not JSON", 400, "not JSON", body=NOT_JSON),
    case(f"POST {CON}", "unknown field", 400, "key: Extra inputs",
         body=with_ids({"referral_url": "{b_inv_url}", "key": "{b_inv_key}"}), field="key"),
    gone(f"GET {CON}/{{id}}", CON + "/{b_conn}", "no connection {b_conn}"),
    gone(f"POST {CON}/{{id}}/accept", CON + "/{b_conn}/accept", "no connection {b_conn}"),
    case(f"POST {CON}/{{id}}/accept", "an active connection", 409, "active cannot accept",
         CON + "/{conn}/accept"),
    case(f"POST {CON}/{{id}}/accept", "a disconnected connection", 409, "disconnected cannot accept",
         CON + "/{gone_conn}/accept"),
    case(f"POST {CON}/{{id}}/accept", "our own request", 409, "requester connection that is requested",
         CON + "/{asked_conn}/accept"),
    gone(f"POST {CON}/{{id}}/decline", CON + "/{b_conn}/decline", "no connection {b_conn}", {}),
    case(f"POST {CON}/{{id}}/decline", "an active connection", 409, "active cannot refuse",
         CON + "/{conn}/decline", {}),
    case(f"POST {CON}/{{id}}/decline", "our own request", 409, "requester connection that is requested",
         CON + "/{asked_conn}/decline", {}),
    case(f"POST {CON}/{{id}}/decline", "message as a number", 400, "message", CON + "/{pending}/decline",
         {"message": 5}, field="message"),
    case(f"POST {CON}/{{id}}/decline", "unknown field", 400, "reason: Extra inputs",
         CON + "/{pending}/decline", {"reason": "no"}, field="reason"),
    case(f"POST {CON}/{{id}}/decline", "not JSON", 400, "not JSON", CON + "/{pending}/decline", NOT_JSON),
    gone(f"POST {CON}/{{id}}/disconnect", CON + "/{b_conn}/disconnect", "no connection {b_conn}", {}),
    case(f"POST {CON}/{{id}}/disconnect", "already disconnected", 409, "disconnected cannot disconnect",
         CON + "/{gone_conn}/disconnect", {}),
    case(f"POST {CON}/{{id}}/disconnect", "a request awaiting us", 409, "requested cannot disconnect",
         CON + "/{pending}/disconnect", {}),
    case(f"POST {CON}/{{id}}/disconnect", "reason as a list", 400, "reason", CON + "/{conn}/disconnect",
         {"reason": ["moved"]}, field="reason"),
    case(f"POST {CON}/{{id}}/disconnect", "not JSON", 400, "not JSON", CON + "/{conn}/disconnect", NOT_JSON),
    case(f"POST {CON}/{{id}}/disconnect", "unknown field", 400, "message: Extra inputs",
         CON + "/{conn}/disconnect", {"message": "bye"}),
    gone(f"GET {CON}/{{id}}/settings", CON + "/{b_conn}/settings", "no connection {b_conn}"),
    gone(f"PUT {CON}/{{id}}/settings", CON + "/{b_conn}/settings", "no connection {b_conn}", {}),
    case(f"PUT {CON}/{{id}}/settings", "workflow of another node", 404, "workflow '{b_wf}' not found",
         CON + "/{conn}/settings", with_ids({"inbound": {"workflow_id": "{b_wf}"}}),
         field="inbound.workflow_id"),
    case(f"PUT {CON}/{{id}}/settings", "a stage of another workflow", 400, "is not in workflow 'Sales'",
         CON + "/{conn}/settings", with_ids({"inbound": {"workflow_id": "{wf}", "stage_id": "{other_stage}"}})),
    case(f"PUT {CON}/{{id}}/settings", "round robin with another node's user", 404, "user '{b_user}' not found",
         CON + "/{conn}/settings",
         with_ids({"inbound": {"assignment": {"rule": "round_robin", "user_ids": ["{user}", "{b_user}"]}}})),
    case(f"PUT {CON}/{{id}}/settings", "outbound from another node's workflow", 404,
         "workflow '{b_wf}' not found", CON + "/{conn}/settings",
         with_ids({"outbound": {"workflow_ids": ["{b_wf}"]}}), field="outbound.workflow_ids"),
    case(f"PUT {CON}/{{id}}/settings", "a field that cannot be shared", 400, "outbound.allowed_fields.0",
         CON + "/{conn}/settings", {"outbound": {"allowed_fields": ["contacts.tax_file_number"]}}),
    case(f"PUT {CON}/{{id}}/settings", "folder as a number", 400, "inbound.folder", CON + "/{conn}/settings",
         {"inbound": {"folder": 5}}, field="inbound.folder"),
    case(f"PUT {CON}/{{id}}/settings", "inbound as text", 400, "inbound", CON + "/{conn}/settings",
         {"inbound": "Sales"}, field="inbound"),
    case(f"PUT {CON}/{{id}}/settings", "unknown field", 400, "direction: Extra inputs",
         CON + "/{conn}/settings", {"direction": "both"}, field="direction"),
    case(f"PUT {CON}/{{id}}/settings", "not JSON", 400, "not JSON", CON + "/{conn}/settings", NOT_JSON),
    # -- referrals (raw offers)
    case(f"POST {REF}", "nothing", 400, "connection_id: Field required", body={}, field="connection_id"),
    case(f"POST {REF}", "no consent", 400, "record the client's consent",
         body=with_ids({**referral_body("{conn}"), "consent": None}), field="consent"),
    case(f"POST {REF}", "connection of another node", 404, "no connection {b_conn}",
         body=with_ids(referral_body("{b_conn}"))),
    case(f"POST {REF}", "a disconnected connection", 403, "is disconnected",
         body=with_ids(referral_body("{gone_conn}"))),
    case(f"POST {REF}", "a pending connection", 403, "is requested", body=with_ids(referral_body("{pending}"))),
    case(f"POST {REF}", "amount as a number", 400, "deal.amount",
         body=with_ids(referral_body("{conn}", deal={"title": "X", "amount": 650000, "currency": "AUD"}))),
    case(f"POST {REF}", "no contacts", 400, "contacts", body=with_ids(referral_body("{conn}", contacts=[])),
         field="contacts"),
    case(f"POST {REF}", "a field not listed as shared", 400, "does not list as shared: contacts.email",
         body=with_ids(referral_body("{conn}", shared_fields=["deal.title", "deal.amount",
                                                                "contacts.first_name", "contacts.last_name"]))),
    case(f"POST {REF}", "a contact without consent", 400, "no recorded consent for contacts c2",
         body=with_ids(referral_body("{conn}", contacts=[{"ref": "c1"}, {"ref": "c2"}],
                                     shared_fields=["deal.title", "deal.amount"]))),
    case(f"POST {REF}", "a referral id already used", 409,
         "referral_id {sent_id} is already used by referral {sent}", field="referral_id",
         body=with_ids(referral_body("{conn}", referral_id="{sent_id}"))),
    case(f"POST {REF}", "not JSON", 400, "not JSON", body=NOT_JSON),
    case(f"POST {REF}", "referral type with spaces", 400, "referral_type",
         body=with_ids(referral_body("{conn}", referral_type="home loan")), field="referral_type"),
    case(f"POST {REF}", "unknown field", 400, "deal_id: Extra inputs",
         body=with_ids({**referral_body("{conn}"), "deal_id": "{deal}"}), field="deal_id"),
    case(f"GET {REF}", "unknown side", 400, "side: must be 'sender' or 'receiver'", REF + "?side=both", field="side"),
    case(f"GET {REF}", "unknown query parameter", 400, "unknown query parameter 'state'", REF + "?state=won"),
    case(f"GET {REF}", "a parameter twice", 400, "query parameter side is given more than once",
         REF + "?side=sender&side=receiver"),
    gone(f"GET {REF}/{{id}}", REF + "/{b_ref}", "no referral {b_ref}"),
    gone(f"POST {REF}/{{id}}/status", REF + "/{b_ref}/status", "no received referral {b_ref}",
         {"status": "accepted"}),
    case(f"POST {REF}/{{id}}/status", "a referral we sent", 404, "no received referral {sent}",
         REF + "/{sent}/status", {"status": "accepted"}),
    case(f"POST {REF}/{{id}}/status", "won before accepted", 409, "received cannot become won",
         REF + "/{received}/status", {"status": "won"}),
    case(f"POST {REF}/{{id}}/status", "unknown status", 400, "status", REF + "/{received}/status",
         {"status": "done"}, field="status"),
    case(f"POST {REF}/{{id}}/status", "no status", 400, "status: Field required", REF + "/{received}/status",
         {"stage": "New"}, field="status"),
    case(f"POST {REF}/{{id}}/status", "stage as a number", 400, "stage", REF + "/{received}/status",
         {"status": "accepted", "stage": 2}, field="stage"),
    case(f"POST {REF}/{{id}}/status", "unknown field", 400, "note: Extra inputs", REF + "/{received}/status",
         {"status": "accepted", "note": "hi"}),
    case(f"POST {REF}/{{id}}/status", "not JSON", 400, "not JSON", REF + "/{received}/status", NOT_JSON),
    gone(f"DELETE {REF}/{{id}}", REF + "/{b_ref}", "no referral {b_ref}"),
    case(f"DELETE {REF}/{{id}}", "a sent referral", 409, "cannot be recalled once it is sent", REF + "/{sent}",
         field="id"),
    # -- outbox, tokens
    case("GET /api/v1/outbox", "unknown state", 400, "state: must be 'pending', 'delivered' or 'failed'",
         "/api/v1/outbox?state=done", field="state"),
    case("GET /api/v1/outbox", "unknown query parameter", 400, "unknown query parameter 'peer'",
         "/api/v1/outbox?peer=x"),
    case("GET /api/v1/outbox", "a parameter twice", 400, "query parameter state is given more than once",
         "/api/v1/outbox?state=failed&state=pending"),
    case("POST /api/v1/outbox/{seq}/retry", "seq is not a number", 400, "seq in the path: must be a whole number",
         "/api/v1/outbox/first/retry", field="seq"),
    gone("POST /api/v1/outbox/{seq}/retry", "/api/v1/outbox/{no_seq}/retry", "no outbox item {no_seq}"),
    case("POST /api/v1/outbox/{seq}/retry", "a delivered item", 409, "is delivered, not failed",
         "/api/v1/outbox/{delivered_seq}/retry"),
    case("POST /api/v1/tokens", "user of another node", 404, "no user {b_user}",
         body=with_ids({"user_id": "{b_user}"}), field="user_id"),
    case("POST /api/v1/tokens", "a deactivated user", 400, "{retired} is not active",
         body=with_ids({"user_id": "{retired}"}), field="user_id"),
    case("POST /api/v1/tokens", "label as a number", 400, "label", body={"label": 5}, field="label"),
    case("POST /api/v1/tokens", "unknown field", 400, "user: Extra inputs",
         body=with_ids({"user": "{ann}"}), field="user"),
    case("POST /api/v1/tokens", "not JSON", 400, "not JSON", body=NOT_JSON),
    # -- referring a deal, deferred referrals
    gone(f"POST {DEALS}/{{id}}/refer", DEALS + "/{b_deal}/refer", "deal '{b_deal}' not found", with_ids(REFER)),
    case(f"POST {DEALS}/{{id}}/refer", "no consent", 400, "record the client's consent",
         DEALS + "/{deal}/refer", with_ids({"connection_id": "{conn}"}), field="consent"),
    case(f"POST {DEALS}/{{id}}/refer", "no connection", 400, "connection_id: Field required",
         DEALS + "/{deal}/refer", with_ids({"consent": consent("{contact}")}), field="connection_id"),
    case(f"POST {DEALS}/{{id}}/refer", "connection of another node", 404, "no connection {b_conn}",
         DEALS + "/{deal}/refer", with_ids({**REFER, "connection_id": "{b_conn}"}), field="connection_id"),
    case(f"POST {DEALS}/{{id}}/refer", "a disconnected connection", 409, "is disconnected",
         DEALS + "/{deal}/refer", with_ids({**REFER, "connection_id": "{gone_conn}"}), field="connection_id"),
    case(f"POST {DEALS}/{{id}}/refer", "consent of a contact of another node", 400,
         "not on this deal: {b_contact}", DEALS + "/{deal}/refer",
         with_ids({**REFER, "consent": consent("{b_contact}")}), field="consent.contact_ids"),
    case(f"POST {DEALS}/{{id}}/refer", "consent without contacts", 400, "consent.contact_ids",
         DEALS + "/{deal}/refer", with_ids({**REFER, "consent": consent()})),
    case(f"POST {DEALS}/{{id}}/refer", "unknown consent method", 400, "consent.method",
         DEALS + "/{deal}/refer", with_ids({**REFER, "consent": consent("{contact}", method="telepathy")})),
    case(f"POST {DEALS}/{{id}}/refer", "a field that cannot be shared", 400, "shared_fields.0",
         DEALS + "/{deal}/refer", with_ids({**REFER, "shared_fields": ["contacts.tax_file_number"]})),
    case(f"POST {DEALS}/{{id}}/refer", "a deal without a client", 400, "add the client",
         DEALS + "/{bare_deal}/refer", with_ids({**REFER, "consent": consent("{contact}")}), field="deal_id"),
    case(f"POST {DEALS}/{{id}}/refer", "agent of another node", 404, "user '{b_user}' not found",
         DEALS + "/{deal}/refer", with_ids({**REFER, "referring_agent_user_id": "{b_user}"})),
    case(f"POST {DEALS}/{{id}}/refer", "defer to the stage it is at", 400, "already at or past that stage",
         DEALS + "/{deal}/refer", with_ids({**REFER, "when_stage_id": "{stage}"}), field="when_stage_id"),
    case(f"POST {DEALS}/{{id}}/refer", "defer to a stage of another node", 404, "stage '{b_stage}' not found",
         DEALS + "/{deal}/refer", with_ids({**REFER, "when_stage_id": "{b_stage}"}), field="when_stage_id"),
    case(f"POST {DEALS}/{{id}}/refer", "defer to a stage of another workflow", 400,
         "not in the deal's workflow", DEALS + "/{deal}/refer",
         with_ids({**REFER, "when_stage_id": "{other_stage}"}), field="when_stage_id"),
    case(f"POST {DEALS}/{{id}}/refer", "message as a number", 400, "message", DEALS + "/{deal}/refer",
         with_ids({**REFER, "message": 5}), field="message"),
    case(f"POST {DEALS}/{{id}}/refer", "unknown field", 400, "contacts: Extra inputs", DEALS + "/{deal}/refer",
         with_ids({**REFER, "contacts": ["{contact}"]}), field="contacts"),
    case(f"POST {DEALS}/{{id}}/refer", "not JSON", 400, "not JSON", DEALS + "/{deal}/refer", NOT_JSON),
    case(f"GET {DFR}", "deal of another node", 404, "deal '{b_deal}' not found", DFR + "?deal_id={b_deal}",
         field="deal_id"),
    case(f"GET {DFR}", "unknown query parameter", 400, "unknown query parameter 'deal'", DFR + "?deal={deal}"),
    case(f"GET {DFR}", "a parameter twice", 400, "query parameter deal_id is given more than once",
         DFR + "?deal_id={deal}&deal_id={bare_deal}"),
    gone(f"POST {DFR}/{{id}}/cancel", DFR + "/{b_dfr}/cancel", "no deferred referral '{b_dfr}'"),
    case(f"POST {DFR}/{{id}}/cancel", "already cancelled", 409, "was already cancelled",
         DFR + "/{cancelled_dfr}/cancel", field="id"),
    # -- opportunities
    case(f"POST {OPP}", "no deal", 400, "deal_id: Field required",
         body={"referral_type": "mortgage", "outcome": "not_raised"}, field="deal_id"),
    case(f"POST {OPP}", "deal of another node", 404, "deal '{b_deal}' not found",
         body=with_ids({"deal_id": "{b_deal}", "referral_type": "mortgage", "outcome": "not_raised"}),
         field="deal_id"),
    case(f"POST {OPP}", "contact of another node", 400, "contact '{b_contact}' is not on deal",
         body=with_ids({"deal_id": "{deal}", "contact_id": "{b_contact}", "referral_type": "mortgage",
                        "outcome": "not_raised"}), field="contact_id"),
    case(f"POST {OPP}", "unknown outcome", 400, "outcome",
         body=with_ids({"deal_id": "{deal}", "referral_type": "mortgage", "outcome": "maybe"}), field="outcome"),
    case(f"POST {OPP}", "future without a date", 400, "needs a follow-up date",
         body=with_ids({"deal_id": "{deal}", "referral_type": "mortgage", "outcome": "future"}),
         field="follow_up_on"),
    case(f"POST {OPP}", "a follow-up date in the past", 400, "is in the past",
         body=with_ids({"deal_id": "{deal}", "referral_type": "mortgage", "outcome": "future",
                        "follow_up_on": "2001-01-01"}), field="follow_up_on"),
    case(f"POST {OPP}", "a follow-up date in words", 400, "follow_up_on",
         body=with_ids({"deal_id": "{deal}", "referral_type": "mortgage", "outcome": "future",
                        "follow_up_on": "next week"}), field="follow_up_on"),
    case(f"POST {OPP}", "a date on a non-future outcome", 400, "only a future opportunity",
         body=with_ids({"deal_id": "{deal}", "referral_type": "mortgage", "outcome": "not_raised",
                        "follow_up_on": "2099-01-01"}), field="follow_up_on"),
    case(f"POST {OPP}", "other without a reason", 400, "reason is required",
         body=with_ids({"deal_id": "{deal}", "referral_type": "mortgage", "outcome": "other"}), field="reason"),
    case(f"POST {OPP}", "referral type with spaces", 400, "referral_type",
         body=with_ids({"deal_id": "{deal}", "referral_type": "home loan", "outcome": "not_raised"}),
         field="referral_type"),
    case(f"POST {OPP}", "unknown field", 400, "note: Extra inputs", field="note",
         body=with_ids({"deal_id": "{deal}", "referral_type": "mortgage", "outcome": "not_raised", "note": "x"})),
    case(f"POST {OPP}", "not JSON", 400, "not JSON", body=NOT_JSON),
    case(f"GET {OPP}", "unknown state", 400, "state", OPP + "?state=done", field="state"),
    case(f"GET {OPP}", "due_by in words", 400, "due_by", OPP + "?due_by=tomorrow", field="due_by"),
    case(f"GET {OPP}", "deal of another node", 404, "deal '{b_deal}' not found", OPP + "?deal_id={b_deal}",
         field="deal_id"),
    case(f"GET {OPP}", "unknown query parameter", 400, "unknown query parameter 'sort'", OPP + "?sort=follow_up_on", field="sort"),
    case(f"GET {OPP}", "a parameter twice", 400, "state is given more than once", OPP + "?state=open&state=all",
         field="state"),
    gone(f"GET {OPP}/{{id}}", OPP + "/{b_opp}", "opportunity '{b_opp}' not found"),
    gone(f"POST {OPP}/{{id}}/close", OPP + "/{b_opp}/close", "opportunity '{b_opp}' not found",
         {"reason": "x"}),
    case(f"POST {OPP}/{{id}}/close", "already closed", 409, "already closed", OPP + "/{closed_opp}/close",
         {"reason": "x"}, field="id"),
    case(f"POST {OPP}/{{id}}/close", "no reason", 400, "reason: Field required", OPP + "/{open_opp}/close", {},
         field="reason"),
    case(f"POST {OPP}/{{id}}/close", "blank reason", 400, "reason", OPP + "/{open_opp}/close", {"reason": " "},
         field="reason"),
    case(f"POST {OPP}/{{id}}/close", "reason as a number", 400, "reason", OPP + "/{open_opp}/close",
         {"reason": 5}, field="reason"),
    case(f"POST {OPP}/{{id}}/close", "unknown field", 400, "note: Extra inputs", OPP + "/{open_opp}/close",
         {"reason": "x", "note": "y"}, field="note"),
    case(f"POST {OPP}/{{id}}/close", "not JSON", 400, "not JSON", OPP + "/{open_opp}/close", NOT_JSON),
    gone(f"POST {OPP}/{{id}}/convert", OPP + "/{b_opp}/convert", "opportunity '{b_opp}' not found",
         with_ids(REFER)),
    case(f"POST {OPP}/{{id}}/convert", "already closed", 409, "already closed", OPP + "/{closed_opp}/convert",
         with_ids(REFER), field="id"),
    case(f"POST {OPP}/{{id}}/convert", "no consent", 400, "record the client's consent",
         OPP + "/{open_opp}/convert", with_ids({"connection_id": "{conn}"}), field="consent"),
    case(f"POST {OPP}/{{id}}/convert", "connection of another node", 404, "no connection {b_conn}",
         OPP + "/{open_opp}/convert", with_ids({**REFER, "connection_id": "{b_conn}"}), field="connection_id"),
    case(f"POST {OPP}/{{id}}/convert", "not JSON", 400, "not JSON", OPP + "/{open_opp}/convert", NOT_JSON),
    case(f"POST {OPP}/{{id}}/convert", "unknown field", 400, "deal_id: Extra inputs",
         OPP + "/{open_opp}/convert", with_ids({**REFER, "deal_id": "{deal}"})),
    # -- reports
    case(f"GET {REP}", "not a date", 400, "from: must be a date written YYYY-MM-DD", REP + "?from=2026-13-01", field="from"),
    case(f"GET {REP}", "a day-first date", 400, "to: must be a date", REP + "?to=01-02-2026", field="to"),
    case(f"GET {REP}", "to before from", 400, "must be after from", REP + "?from=2026-02-01&to=2026-01-01",
         field="to"),
    case(f"GET {REP}", "unknown side", 400, "side: must be 'sender' or 'receiver'", REP + "?side=both", field="side"),
    case(f"GET {REP}", "unknown parameter", 400, "unknown query parameter 'since'", REP + "?since=2026-01-01"),
    case(f"GET {REP}", "a parameter twice", 400, "from is given more than once",
         REP + "?from=2026-01-01&from=2026-02-01"),
    case(f"GET {REP}.csv", "not a date", 400, "from: must be a date", REP + ".csv?from=yesterday", field="from"),
    case(f"GET {REP}.csv", "unknown parameter", 400, "unknown query parameter 'format'", REP + ".csv?format=xlsx"),
    case(f"GET {REP}.csv", "to equal to from", 400, "must be after from",
         REP + ".csv?from=2026-01-01&to=2026-01-01"),
]
# fmt: on
# PATCH on a connection's settings takes the same bodies as PUT, and refuses the same ones.
CASES += [dataclasses.replace(c, route=c.route.replace("PUT ", "PATCH ", 1))
          for c in CASES if c.route == f"PUT {CON}/{{id}}/settings"]


def test_the_table_covers_every_route():
    declared = {key for key, route in ROUTES.items() if route.admin_only}
    assert declared == ADMIN_ONLY, "admin-only routes differ from the policy written here"
    by_route: dict[str, list[Case]] = {}
    for c in CASES:
        assert c.route in ROUTES, f"case for a route that does not exist: {c.route}"
        by_route.setdefault(c.route, []).append(c)
    missing = [key for key in ROUTES if key not in by_route and key not in AUTH_ONLY]
    assert missing == [], f"routes without a bad-input case: {missing}"
    assert not set(AUTH_ONLY) & set(by_route), "a route said to take no input has input cases"
    for key, route in ROUTES.items():
        cases = by_route.get(key, [])
        if "{" in route.path:
            foreign = NUMERIC_IDS.get(key, "{b_")
            assert any(c.status == 404 and foreign in c.url for c in cases), (
                f"{key}: no case with another node's id"
            )
        if route.body is not None:
            assert any(c.status == 400 and c.body is not None for c in cases), (
                f"{key}: no bad-body case"
            )
            assert any(c.body is NOT_JSON for c in cases), f"{key}: no case whose body is not JSON"
            assert any("Extra inputs" in c.says for c in cases), f"{key}: no unknown-field case"


def test_every_error_code_has_its_own_status():
    """The API and the pages turn a protocol error or a CRM error into the status their maps
    give its code, else 400: every code is in the map, so the fallback is never used."""
    assert set(HTTP_STATUS) == set(ErrorCode)
    assert set(api.CRM_STATUS) == set(views.CRM_STATUS) == set(get_args(CrmErrorCode))


def test_every_route_has_a_bad_input_table():
    served = [f"{r.method} {r.path}" for r in routes.ALL]
    assert len(served) == len(set(served)), "a route is declared twice"
    assert not set(ROUTES) & set(CRM_ROUTES), "a route is in both tables"
    assert set(ROUTES) | set(CRM_ROUTES) == set(served)


# --- the world ---------------------------------------------------------------------------


async def until_quiet(*nodes: RunningNode) -> None:
    """Every node has delivered (or given up on) everything it queued, and no envelope
    moved between two looks (a delivery may queue a reply on the other node)."""
    seen: list[Any] = []

    def look(conn: Any) -> tuple[int, int, int]:
        pending, queued = conn.execute(
            "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FROM outbox"
        ).fetchone()
        return pending, queued, conn.execute("SELECT count(*) FROM inbox").fetchone()[0]

    async def quiet() -> bool:
        now = [await n.node.db.read(look) for n in nodes]
        settled = all(pending == 0 for pending, _, _ in now) and seen[-1:] == [now]
        seen.append(now)
        return settled

    await wait_for(quiet)


async def invite(n: RunningNode, name: str, direction: str = "both") -> dict[str, Any]:
    return await n.api("POST", INV, {"name": name, "direction": direction}, expect=201)


async def connect(inviter: RunningNode, joiner: RunningNode) -> str:
    """``joiner`` redeems an invitation of ``inviter``; both end up active."""
    invitation = await invite(inviter, joiner.name)
    body = {"referral_url": invitation["referral_url"], "referral_key": invitation["referral_key"]}
    cid = (await joiner.api("POST", CON, body, expect=202))["connection"]["id"]

    async def active() -> bool:
        for n in (inviter, joiner):
            answer = await call(n, "GET", f"{CON}/{cid}")
            if answer.status != 200 or answer.body["connection"]["state"] != "active":
                return False
        return True

    await wait_for(active)
    return cid


async def crm_setup(n: RunningNode, w: dict[str, str], prefix: str = "") -> None:
    """A "Sales" workflow, a second one, a client and a deal with the client on it."""
    owner = (await n.api("GET", "/api/v1/users"))["users"][0]["id"]

    async def workflow(name: str, stages: list[str]) -> dict[str, Any]:
        body = {"name": name, "owner_user_id": owner, "stage_names": stages}
        return (await n.api("POST", "/api/v1/workflows", body, expect=201))["workflow"]

    sales = await workflow("Sales", ["Applicant", "Offer accepted", "Settled"])
    other = await workflow("Commercial", ["Enquiry"])
    jo = {"first_name": "Jo", "last_name": "Citizen", "email": "jo@example.com"}
    contact = (await n.api("POST", "/api/v1/contacts", jo, expect=201))["contact"]["id"]
    deal = {"title": "Purchase", "workflow_id": sales["id"], "stage_id": sales["stages"][0]["id"],
            "contacts": [{"contact_id": contact}]}  # fmt: skip
    w |= {
        f"{prefix}user": owner,
        f"{prefix}wf": sales["id"],
        f"{prefix}stage": sales["stages"][0]["id"],
        f"{prefix}stage2": sales["stages"][1]["id"],
        f"{prefix}other_stage": other["stages"][0]["id"],
        f"{prefix}contact": contact,
        f"{prefix}deal": (await n.api("POST", DEALS, deal, expect=201))["deal"]["id"],
    }


async def build_world(node_factory: Any) -> tuple[RunningNode, dict[str, str]]:
    """Alpha (the node under test) actively connected with Beta both ways, with a
    connection to Gamma that it ended and a request from Gamma awaiting its admin;
    Beta also connected with Gamma. Referrals, deferred referrals, opportunities and
    invitations in every state a case needs, on Alpha and (for foreign ids) on Beta."""
    # A tries an unknown token on every route: far more wrong tokens than guessers are allowed.
    a = await node_factory("Alpha", auth_failures_per_min=10_000)
    b, g = await node_factory("Beta"), await node_factory("Gamma")
    w: dict[str, str] = {"any": "xyz_0000000000000000000000000", "b_url": b.url}
    await crm_setup(a, w)
    await crm_setup(b, w, "b_")
    w["ann"] = (await a.api("POST", "/api/v1/users", {"email": "ann@alpha.example", "name": "Ann"},
                            expect=201))["user"]["id"]  # fmt: skip
    w["ann_token"] = await token_for(a, w["ann"])
    w["retired"] = (await a.api("POST", "/api/v1/users", {"email": "rob@alpha.example", "name": "Rob"},
                                expect=201))["user"]["id"]  # fmt: skip
    await a.api("PATCH", f"/api/v1/users/{w['retired']}", {"active": False})
    bare = {"title": "No client yet", "workflow_id": w["wf"], "stage_id": w["stage"]}
    w["bare_deal"] = (await a.api("POST", DEALS, bare, expect=201))["deal"]["id"]

    # Connections: Alpha invites Beta (so Alpha's invitation is used); Beta-Gamma;
    # Alpha-Gamma, then Alpha disconnects; Gamma asks Alpha's admin to connect.
    w["conn"] = await connect(a, b)
    w["inv_used"] = (await a.api("GET", INV))["invitations"][0]["id"]
    w["b_conn"] = await connect(b, g)
    w["gone_conn"] = await connect(g, a)
    await a.api("POST", f"{CON}/{w['gone_conn']}/disconnect", {})
    ask = {"url": a.url, "email": "admin@alpha.example", "direction": "both"}
    w["pending"] = (await g.api("POST", CON, ask, expect=202))["connection"]["id"]
    ask = {"url": g.url, "email": "admin@gamma.example", "direction": "both"}
    w["asked_conn"] = (await a.api("POST", CON, ask, expect=202))["connection"]["id"]

    # Invitations: one open, one revoked; one of Beta's with a URL pinned to Gamma.
    opened = await invite(a, "Someone")
    w["inv_open"] = opened["invitation"]["id"]
    w["inv_open_url"], w["inv_open_key"] = opened["referral_url"], opened["referral_key"]
    w["inv_revoked"] = (await invite(a, "Nobody"))["invitation"]["id"]
    await a.api("POST", f"{INV}/{w['inv_revoked']}/revoke")
    theirs = await invite(b, "Anyone")
    w["b_inv"], w["b_inv_url"], w["b_inv_key"] = (
        theirs["invitation"]["id"], theirs["referral_url"], theirs["referral_key"])  # fmt: skip
    w["g_node"] = g.node.me
    w["b_inv_url_wrong_node"] = theirs["referral_url"].split("?node=")[0] + "?node=" + g.node.me

    # Referrals: Alpha refers its deal to Beta; Beta refers one to Alpha.
    refer = {"connection_id": w["conn"], "referring_agent_user_id": w["user"], "consent": consent(w["contact"])}
    sent = (await a.api("POST", f"{DEALS}/{w['deal']}/refer", refer, expect=202))["referral"]
    w["sent"], w["sent_id"] = sent["local_id"], sent["id"]
    b_refer = {"connection_id": w["conn"], "referring_agent_user_id": w["b_user"], "consent": consent(w["b_contact"])}
    w["b_ref"] = (await b.api("POST", f"{DEALS}/{w['b_deal']}/refer", b_refer, expect=202))[
        "referral"
    ]["local_id"]
    # Deferred referrals: one waiting and one cancelled at Alpha, one waiting at Beta.
    later = refer | {"when_stage_id": w["stage2"], "again": True}  # the deal is referred already
    await a.api("POST", f"{DEALS}/{w['deal']}/refer", later, expect=201)
    w["cancelled_dfr"] = (await a.api("POST", f"{DEALS}/{w['deal']}/refer", later, expect=201))[
        "deferred"
    ]["id"]
    await a.api("POST", f"{DFR}/{w['cancelled_dfr']}/cancel")
    b_later = b_refer | {"when_stage_id": w["b_stage2"], "again": True}
    w["b_dfr"] = (await b.api("POST", f"{DEALS}/{w['b_deal']}/refer", b_later, expect=201))[
        "deferred"
    ]["id"]
    # Opportunities: one open and one closed at Alpha, one at Beta.
    opp = {"deal_id": w["deal"], "referral_type": "mortgage", "outcome": "not_raised"}
    w["open_opp"] = (await a.api("POST", OPP, opp, expect=201))["opportunity"]["id"]
    declined = opp | {"outcome": "client_declined"}
    w["closed_opp"] = (await a.api("POST", OPP, declined, expect=201))["opportunity"]["id"]
    b_opp = {"deal_id": w["b_deal"], "referral_type": "mortgage", "outcome": "not_raised"}
    w["b_opp"] = (await b.api("POST", OPP, b_opp, expect=201))["opportunity"]["id"]

    await until_quiet(a, b, g)
    received = (await a.api("GET", f"{REF}?side=receiver"))["referrals"]
    assert [r["state"] for r in received] == ["received"]
    w["received"] = received[0]["local_id"]
    assert (await a.api("GET", f"{REF}/{w['sent']}"))["referral"]["state"] == "delivered"
    seqs = await a.node.db.read(
        lambda conn: conn.execute("SELECT seq, state FROM outbox ORDER BY seq").fetchall()
    )
    w["delivered_seq"] = str(next(seq for seq, state in seqs if state == "delivered"))
    w["no_seq"] = str(seqs[-1][0] + 1000)
    return a, w


#: Columns compared, where not all.
COLUMNS = {"api_tokens": "id, user_id, token_hash, label, created_at, revoked_at"}


async def snapshot(n: RunningNode) -> dict[str, Any]:
    """Every row of every table, and the signing key in use. A token's last use is
    left out: a request that is refused after its token is checked still used the token."""

    def read(conn: Any) -> dict[str, Any]:
        return {
            t: [tuple(r) for r in conn.execute(
                f"SELECT {COLUMNS.get(t, '*')} FROM {t} ORDER BY {WITHOUT_ROWID.get(t, 'rowid')}")]
            for t in TABLES
        }

    return await n.node.db.read(read) | {"signing key": n.node.keys.signing.kid}


async def send(n: RunningNode, method: str, url: str, body: Any, token: Any) -> Any:
    if body is NOT_JSON:
        body = Csv("{not json", "application/json")
    return await call(n, method, url, body, token=token)


async def test_bad_input_is_refused_by_name_and_leaves_nothing_behind(node_factory):
    a, world = await build_world(node_factory)
    tables = await a.node.db.read(
        lambda conn: {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    )
    unwatched = tables - set(TABLES) - {"sqlite_sequence"}
    assert not unwatched, f"tables the snapshot does not watch: {sorted(unwatched)}"
    tokens = {"admin": a.token, "ann": world["ann_token"], "none": NONE, "bogus": "rnt_not-a-token"}
    await a.node.search.run_once()  # what the world's writes left to index, indexed now, not during the run
    before = await snapshot(a)
    problems: list[str] = []
    cases = CASES + token_cases(ROUTES, admin_only=ADMIN_ONLY, seq="1")
    for c in cases:
        label = f"{c.route} [{c.what}]"
        token = tokens[c.token or ("admin" if c.route in ADMIN_ONLY else "ann")]
        body = c.body(world) if callable(c.body) else c.body
        answer = await send(a, c.route.split(" ")[0], c.url.format(**world), body, token)
        problem = problem_with(c, answer, world, CODES)
        if problem is not None:
            problems.append(f"{label}: {problem}")
        after = await snapshot(a)
        if after != before:
            changed = [t for t in after if after[t] != before[t]]
            problems.append(f"{label}: left changes behind in {changed}")
            before = after
    assert not problems, f"{len(problems)} of {len(cases)} cases failed:\n" + "\n".join(problems)
