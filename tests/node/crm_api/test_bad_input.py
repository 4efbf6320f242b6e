"""Bad input on every CRM route of the admin API, table-driven, against real nodes.

Each case names its route, sends something wrong and says which status it expects and
what the error message must mention (what to fix). Every case runs against the same
node, and after each one every CRM table must be exactly as it was: a refused call
leaves nothing half-written. No token, an unknown token and (on admin routes) a
broker's token are tried on every route.

``test_the_table_covers_every_route`` makes a new route fail until it gets cases: every
route needs one, a route with an id in its path needs one with another node's id (404),
a route with a JSON body needs a 400 one with a body, and the admin-only routes must be
exactly those listed in ``ADMIN_ONLY``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from node.http import contacts_api, csv_api, deals_api, notes_api, users_api, workflows_api

from .conftest import NONE, Csv, add_user, call, snapshot, token_for

ROUTES = {
    f"{r.method} {r.path}": r
    for r in [
        *(r for r in users_api.ROUTES if r.path != "/api/v1/tokens"),
        *workflows_api.ROUTES,
        *deals_api.ROUTES,
        *notes_api.ROUTES,
        *contacts_api.ROUTES,
        *csv_api.ROUTES,
    ]
}

ADMIN_ONLY = {
    "POST /api/v1/users", "GET /api/v1/users", "PATCH /api/v1/users/{id}",
    "POST /api/v1/workflows", "PATCH /api/v1/workflows/{id}", "POST /api/v1/workflows/{id}/stages",
    "POST /api/v1/workflows/{id}/stages/order", "PATCH /api/v1/stages/{id}", "DELETE /api/v1/stages/{id}",
    "GET /api/v1/export/deals.csv", "GET /api/v1/export/contacts.csv",
    "POST /api/v1/import/deals", "POST /api/v1/import/contacts",
}  # fmt: skip

#: Routes that take no input at all: only the generated token cases apply.
AUTH_ONLY = {"GET /api/v1/users": "takes no input (users_api.list_users)"}

CODES = {
    400: {"invalid", "malformed"},
    401: {"unauthenticated"},
    403: {"forbidden"},
    404: {"not_found"},
    409: {"conflict"},
    415: {"unsupported_media_type"},
}

Body = Any  # JSON, a Csv, None, or a function of the world returning one of those


@dataclass(frozen=True)
class Case:
    route: str  # "METHOD /path" as declared in ROUTES
    what: str
    status: int
    says: str  # part of error.message (a format string over the world)
    url: str  # a format string over the world
    body: Body = None
    field: str | None = None  # error.field, when given
    rows: tuple[tuple[int, str], ...] | None = None  # CSV import: every (row, field) refused
    token: str | None = None  # "admin", "ann", "none", "bogus"; default by the route's policy
    exact: bool = False  # the message is ``says`` word for word, not only mentions it


def case(
    route: str,
    what: str,
    status: int,
    says: str,
    url: str | None = None,
    body: Body = None,
    **kw: Any,
) -> Case:
    return Case(route, what, status, says, url or route.split(" ", 1)[1], body, **kw)


NOT_FOUND = "{kind} '{{{key}}}' not found"


def gone(route: str, url: str, kind: str, key: str, body: Body = None, **kw: Any) -> Case:
    """Another node's id (or one nobody has) in the path: 404 naming it."""
    return case(
        route, f"{kind} of another node", 404, NOT_FOUND.format(kind=kind, key=key), url, body, **kw
    )


DEAL = {"title": "Loan", "workflow_id": "{wf}", "stage_id": "{stage}"}
DOC = {"name": "guide.pdf", "label": "Credit guide", "size_bytes": 10, "sha256": "ab" * 32}
DEAL_HEADER = "title,workflow,stage,amount,currency,contacts,id\n"
CONTACT_HEADER = "id,first_name,last_name,email\n"


def with_ids(template: Any) -> Callable[[dict[str, str]], Any]:
    """A JSON body whose strings may name world ids as {key}."""

    def fill(world: dict[str, str]) -> Any:
        if isinstance(template, dict):
            return {k: with_ids(v)(world) for k, v in template.items()}
        if isinstance(template, list):
            return [with_ids(v)(world) for v in template]
        if isinstance(template, str):
            return template.format(**world)
        return template

    return fill


def csv(text: str, content_type: str = "text/csv") -> Callable[[dict[str, str]], Csv]:
    return lambda world: Csv(text.format(**world), content_type)


U, W, S, D, C = (
    "/api/v1/users",
    "/api/v1/workflows",
    "/api/v1/stages",
    "/api/v1/deals",
    "/api/v1/contacts",
)

# fmt: off
CASES: list[Case] = [
    # -- users
    case(f"POST {U}", "no email", 400, "email: Field required", body={"name": "X"}, field="email"),
    case(f"POST {U}", "not an email", 400, "email", body={"email": "x", "name": "X"}, field="email"),
    case(f"POST {U}", "email taken (other case)", 409, "already exists",
         body={"email": "ANN@alpha.example", "name": "Ann 2"}, field="email"),
    case(f"POST {U}", "unknown role", 400, "role",
         body={"email": "z@alpha.example", "name": "Z", "role": "boss"}),
    gone(f"PATCH {U}/{{id}}", U + "/{b_user}", "user", "b_user", {"name": "X"}),
    case(f"PATCH {U}/{{id}}", "active not a boolean", 400, "active", U + "/{ann}", {"active": "no"}),
    case(f"PATCH {U}/{{id}}", "email cannot change", 400, "email", U + "/{ann}", {"email": "a@b.example"}),
    case(f"PATCH {U}/{{id}}", "blank name", 400, "name", U + "/{ann}", {"name": ""}),
    case(f"PATCH {U}/{{id}}", "demote the only admin", 409, "only active admin", U + "/{admin}",
         {"role": "broker"}, field="role"),
    case(f"PATCH {U}/{{id}}", "deactivate the only admin", 409, "only active admin", U + "/{admin}",
         {"active": False}, field="active"),
    case(f"PATCH {U}/{{id}}", "deactivate a workflow owner", 409, "owns workflow(s) 'Commercial'",
         U + "/{ann}", {"active": False}, field="active"),
    # -- workflows and stages
    case(f"POST {W}", "no stages", 400, "stage_names: Field required",
         body=with_ids({"name": "X", "owner_user_id": "{admin}"})),
    case(f"POST {W}", "empty stage list", 400, "stage_names",
         body=with_ids({"name": "X", "owner_user_id": "{admin}", "stage_names": []})),
    case(f"POST {W}", "a stage twice", 400, "appears twice",
         body=with_ids({"name": "X", "owner_user_id": "{admin}", "stage_names": ["New", "new"]})),
    case(f"POST {W}", "owner of another node", 404, "user '{b_user}' not found", field="owner_user_id",
         body=with_ids({"name": "X", "owner_user_id": "{b_user}", "stage_names": ["New"]})),
    case(f"POST {W}", "name taken", 409, "already exists", field="name",
         body=with_ids({"name": "home LOANS", "owner_user_id": "{admin}", "stage_names": ["New"]})),
    case(f"POST {W}", "name not a string", 400, "name",
         body=with_ids({"name": 5, "owner_user_id": "{admin}", "stage_names": ["New"]})),
    case(f"POST {W}", "a list, not an object", 400, "(body)", body=["Home"]),
    case(f"GET {W}", "unknown query parameter", 400, "unknown query parameter 'sort'", W + "?sort=name"),
    gone(f"GET {W}/{{id}}", W + "/{b_wf}", "workflow", "b_wf"),
    case(f"GET {W}/{{id}}", "unknown query parameter", 400, "unknown query parameter 'x'", W + "/{wf}?x=1"),
    gone(f"PATCH {W}/{{id}}", W + "/{b_wf}", "workflow", "b_wf", {"name": "X"}),
    case(f"PATCH {W}/{{id}}", "name of another workflow", 409, "already exists", W + "/{wf}",
         {"name": "Commercial"}),
    case(f"PATCH {W}/{{id}}", "owner of another node", 404, "user '{b_user}' not found", W + "/{wf}",
         with_ids({"owner_user_id": "{b_user}"})),
    case(f"PATCH {W}/{{id}}", "blank name", 400, "name", W + "/{wf}", {"name": ""}),
    case(f"PATCH {W}/{{id}}", "stages are not patched here", 400, "stage_names", W + "/{wf}",
         {"stage_names": ["A"]}),
    gone(f"POST {W}/{{id}}/stages", W + "/{b_wf}/stages", "workflow", "b_wf", {"name": "X"}),
    case(f"POST {W}/{{id}}/stages", "name taken", 409, "already has a stage named", W + "/{wf}/stages",
         {"name": "new"}),
    case(f"POST {W}/{{id}}/stages", "negative position", 400, "position", W + "/{wf}/stages",
         {"name": "X", "position": -1}),
    case(f"POST {W}/{{id}}/stages", "position as text", 400, "position", W + "/{wf}/stages",
         {"name": "X", "position": "2"}),
    case(f"POST {W}/{{id}}/stages", "no name", 400, "name: Field required", W + "/{wf}/stages", {}),
    gone(f"POST {W}/{{id}}/stages/order", W + "/{b_wf}/stages/order", "workflow", "b_wf",
         with_ids({"stage_ids": ["{b_stage}"]})),
    case(f"POST {W}/{{id}}/stages/order", "a stage left out", 400, "exactly once",
         W + "/{wf}/stages/order", with_ids({"stage_ids": ["{stage}", "{stage2}"]}), field="stage_ids"),
    case(f"POST {W}/{{id}}/stages/order", "a stage twice", 400, "exactly once", W + "/{wf}/stages/order",
         with_ids({"stage_ids": ["{stage}", "{stage2}", "{stage2}"]})),
    case(f"POST {W}/{{id}}/stages/order", "a stage of another workflow", 400,
         "'{other_stage}' is not one of them", W + "/{wf}/stages/order",
         with_ids({"stage_ids": ["{stage}", "{stage2}", "{other_stage}"]})),
    case(f"POST {W}/{{id}}/stages/order", "a stage of another node", 400, "'{b_stage}' is not one of them",
         W + "/{wf}/stages/order", with_ids({"stage_ids": ["{stage}", "{stage2}", "{b_stage}"]})),
    case(f"POST {W}/{{id}}/stages/order", "not a list", 400, "stage_ids", W + "/{wf}/stages/order",
         with_ids({"stage_ids": "{stage}"})),
    gone(f"PATCH {S}/{{id}}", S + "/{b_stage}", "stage", "b_stage", {"name": "X"}),
    case(f"PATCH {S}/{{id}}", "name of a sibling stage", 409, "already has a stage named 'lodged'",
         S + "/{stage}", {"name": "lodged"}),
    case(f"PATCH {S}/{{id}}", "nothing to change", 400, "give name, outcome or both", S + "/{stage}", {}),
    case(f"PATCH {S}/{{id}}", "a null name", 400, "name cannot be null", S + "/{stage}", {"name": None}),
    case(f"PATCH {S}/{{id}}", "an outcome that is not one", 400, "outcome", S + "/{stage}",
         {"outcome": "settled"}, field="outcome"),
    case(f"POST {W}", "an outcome for a stage not listed", 400, "which is not one of stage_names",
         body=with_ids({"name": "X", "owner_user_id": "{admin}", "stage_names": ["New"],
                        "outcomes": {"Settled": "won"}})),
    case(f"PATCH {S}/{{id}}", "position is not renamed", 400, "position", S + "/{stage}",
         {"name": "X", "position": 1}),
    gone(f"DELETE {S}/{{id}}", S + "/{b_stage}", "stage", "b_stage"),
    case(f"DELETE {S}/{{id}}", "a stage holding a deal", 409, "still holds 1 deal(s); move them first",
         S + "/{stage}"),
    case(f"DELETE {S}/{{id}}", "the only stage", 409, "only stage", S + "/{solo_stage}"),
    # -- deals
    case(f"POST {D}", "no title", 400, "title: Field required",
         body=with_ids({"workflow_id": "{wf}", "stage_id": "{stage}"}), field="title"),
    case(f"POST {D}", "a stage of another workflow", 400,
         "belongs to workflow 'Commercial', not 'Home loans'", field="stage_id",
         body=with_ids({**DEAL, "stage_id": "{other_stage}"})),
    case(f"POST {D}", "workflow of another node", 404, "workflow '{b_wf}' not found", field="workflow_id",
         body=with_ids({**DEAL, "workflow_id": "{b_wf}", "stage_id": "{b_stage}"})),
    case(f"POST {D}", "stage of another node", 404, "stage '{b_stage}' not found", field="stage_id",
         body=with_ids({**DEAL, "stage_id": "{b_stage}"})),
    case(f"POST {D}", "amount as a number", 400, "amount", body=with_ids({**DEAL, "amount": 650000.5})),
    case(f"POST {D}", "amount without currency", 400, "currency",
         body=with_ids({**DEAL, "amount": "650000.00"})),
    case(f"POST {D}", "contact of another node", 404, "contact '{b_contact}' not found",
         field="contacts.0.contact_id",
         body=with_ids({**DEAL, "contacts": [{"contact_id": "{b_contact}"}]})),
    case(f"POST {D}", "a contact twice", 400, "listed twice",
         body=with_ids({**DEAL, "contacts": [{"contact_id": "{contact}"}, {"contact_id": "{contact}"}]})),
    case(f"POST {D}", "owner of another node", 404, "user '{b_user}' not found", field="owner_user_id",
         body=with_ids({**DEAL, "owner_user_id": "{b_user}"})),
    case(f"POST {D}", "unknown field", 400, "stage: Extra inputs", body=with_ids({**DEAL, "stage": "New"})),
    case(f"GET {D}", "limit 0", 400, "query parameter limit", D + "?limit=0", field="limit"),
    case(f"GET {D}", "limit not a number", 400, "query parameter limit", D + "?limit=ten"),
    case(f"GET {D}", "limit too big", 400, "query parameter limit", D + "?limit=1001"),
    case(f"GET {D}", "negative offset", 400, "query parameter offset", D + "?offset=-1"),
    case(f"GET {D}", "unknown origin", 400, "query parameter origin", D + "?origin=imported"),
    case(f"GET {D}", "workflow of another node", 404, "workflow '{b_wf}' not found",
         D + "?workflow_id={b_wf}"),
    case(f"GET {D}", "contact of another node", 404, "contact '{b_contact}' not found",
         D + "?contact_id={b_contact}"),
    case(f"GET {D}", "owner of another node", 404, "user '{b_user}' not found",
         D + "?owner_user_id={b_user}"),
    case(f"GET {D}", "a stage of another workflow", 400, "is not in workflow 'Home loans'",
         D + "?workflow_id={wf}&stage_id={other_stage}", field="stage_id"),
    case(f"GET {D}", "a parameter twice", 400, "label is given more than once", D + "?label=a&label=b"),
    case(f"GET {D}", "unknown parameter", 400, "unknown query parameter 'sort'", D + "?sort=title"),
    gone(f"GET {D}/{{id}}", D + "/{b_deal}", "deal", "b_deal"),
    case(f"GET {D}/{{id}}", "unknown query parameter", 400, "unknown query parameter 'expand'",
         D + "/{deal}?expand=contacts"),
    gone(f"PATCH {D}/{{id}}", D + "/{b_deal}", "deal", "b_deal", {"title": "X"}),
    case(f"PATCH {D}/{{id}}", "stage is not patched", 400, "move the deal with POST", D + "/{deal}",
         with_ids({"stage_id": "{stage2}"}), field="stage_id"),
    case(f"PATCH {D}/{{id}}", "blank title", 400, "title", D + "/{deal}", {"title": ""}),
    case(f"PATCH {D}/{{id}}", "null title", 400, "title", D + "/{deal}", {"title": None}),
    case(f"PATCH {D}/{{id}}", "currency cleared under an amount", 400,
         "currency: is required when amount is set", D + "/{deal}", {"currency": None}),
    case(f"PATCH {D}/{{id}}", "owner of another node", 404, "user '{b_user}' not found", D + "/{deal}",
         with_ids({"owner_user_id": "{b_user}"})),
    case(f"PATCH {D}/{{id}}", "contact of another node", 404, "contact '{b_contact}' not found",
         D + "/{deal}", with_ids({"contacts": [{"contact_id": "{b_contact}"}]}),
         field="contacts.0.contact_id"),
    case(f"PATCH {D}/{{id}}", "label with ';'", 400, "without ';'", D + "/{deal}", {"labels": ["a;b"]}),
    gone(f"POST {D}/{{id}}/move", D + "/{b_deal}/move", "deal", "b_deal",
         with_ids({"stage_id": "{stage2}"})),
    case(f"POST {D}/{{id}}/move", "a stage of another workflow", 400,
         "belongs to workflow 'Commercial', not 'Home loans'", D + "/{deal}/move",
         with_ids({"stage_id": "{other_stage}"}), field="stage_id"),
    case(f"POST {D}/{{id}}/move", "a stage of another node", 404, "stage '{b_stage}' not found",
         D + "/{deal}/move", with_ids({"stage_id": "{b_stage}"})),
    case(f"POST {D}/{{id}}/move", "to another workflow, a stage of this one", 400,
         "belongs to workflow 'Home loans', not 'Commercial'", D + "/{deal}/move",
         with_ids({"stage_id": "{stage2}", "workflow_id": "{wf2}"})),
    case(f"POST {D}/{{id}}/move", "no stage", 400, "stage_id: Field required", D + "/{deal}/move", {}),
    case(f"POST {D}/{{id}}/move", "stage as a number", 400, "stage_id", D + "/{deal}/move",
         {"stage_id": 5}),
    gone(f"POST {D}/{{id}}/contacts", D + "/{b_deal}/contacts", "deal", "b_deal",
         with_ids({"contact_id": "{contact2}"})),
    case(f"POST {D}/{{id}}/contacts", "contact of another node", 404, "contact '{b_contact}' not found",
         D + "/{deal}/contacts", with_ids({"contact_id": "{b_contact}"})),
    case(f"POST {D}/{{id}}/contacts", "unknown role", 400, "role", D + "/{deal}/contacts",
         with_ids({"contact_id": "{contact2}", "role": "guarantor"})),
    case(f"POST {D}/{{id}}/contacts", "no contact", 400, "contact_id: Field required",
         D + "/{deal}/contacts", {"role": "primary"}),
    gone(f"DELETE {D}/{{id}}/contacts/{{contact_id}}", D + "/{b_deal}/contacts/{contact}", "deal",
         "b_deal"),
    case(f"DELETE {D}/{{id}}/contacts/{{contact_id}}", "contact not on the deal", 404,
         "contact '{contact2}' is not on deal '{deal}'", D + "/{deal}/contacts/{contact2}"),
    case(f"DELETE {D}/{{id}}/contacts/{{contact_id}}", "contact of another node", 404,
         "contact '{b_contact}' is not on deal", D + "/{deal}/contacts/{b_contact}"),
    gone(f"GET {D}/{{id}}/notes", D + "/{b_deal}/notes", "deal", "b_deal"),
    case(f"GET {D}/{{id}}/notes", "unknown query parameter", 400, "unknown query parameter 'kind'",
         D + "/{deal}/notes?kind=user"),
    gone(f"POST {D}/{{id}}/notes", D + "/{b_deal}/notes", "deal", "b_deal", {"body": "x"}),
    case(f"POST {D}/{{id}}/notes", "empty note", 400, "body", D + "/{deal}/notes", {"body": ""}),
    case(f"POST {D}/{{id}}/notes", "no body", 400, "body: Field required", D + "/{deal}/notes", {}),
    case(f"POST {D}/{{id}}/notes", "note as a number", 400, "body", D + "/{deal}/notes", {"body": 5}),
    case(f"POST {D}/{{id}}/notes", "contact of another node", 404, "contact '{b_contact}' not found",
         D + "/{deal}/notes", with_ids({"body": "x", "contact_id": "{b_contact}"})),
    case(f"POST {D}/{{id}}/notes", "a contact not on the deal", 400, "'{contact2}' is not on deal '{deal}'",
         D + "/{deal}/notes", with_ids({"body": "x", "contact_id": "{contact2}"}), field="contact_id"),
    gone(f"GET {D}/{{id}}/documents", D + "/{b_deal}/documents", "deal", "b_deal"),
    case(f"GET {D}/{{id}}/documents", "unknown query parameter", 400, "unknown query parameter 'kind'",
         D + "/{deal}/documents?kind=pdf"),
    gone(f"POST {D}/{{id}}/documents", D + "/{b_deal}/documents", "deal", "b_deal", DOC),
    case(f"POST {D}/{{id}}/documents", "bad digest", 400, "sha256", D + "/{deal}/documents",
         {**DOC, "sha256": "abc"}),
    case(f"POST {D}/{{id}}/documents", "size as text", 400, "size_bytes", D + "/{deal}/documents",
         {**DOC, "size_bytes": "10"}),
    case(f"POST {D}/{{id}}/documents", "negative size", 400, "size_bytes", D + "/{deal}/documents",
         {**DOC, "size_bytes": -1}),
    case(f"POST {D}/{{id}}/documents", "a path, not a file name", 400, "must be a file name without '/'",
         D + "/{deal}/documents", {**DOC, "name": "../etc/passwd"}, field="name"),
    case(f"POST {D}/{{id}}/documents", "no name", 400, "name: Field required", D + "/{deal}/documents",
         {k: v for k, v in DOC.items() if k != "name"}),
    # -- contacts
    case(f"POST {C}", "not an email", 400, "email", body={"email": "jo at example"}),
    case(f"POST {C}", "no such date", 400, "YYYY-MM-DD", body={"date_of_birth": "1988-13-01"}),
    case(f"POST {C}", "country by name", 400, "address.country",
         body={"address": {"country": "Australia"}}),
    case(f"POST {C}", "custom field not text", 400, "custom_fields", body={"custom_fields": {"pets": 2}}),
    case(f"POST {C}", "unknown field", 400, "mobile: Extra inputs", body={"mobile": "0400"}),
    case(f"GET {C}", "limit too big", 400, "query parameter limit", C + "?limit=5000"),
    case(f"GET {C}", "a parameter twice", 400, "q is given more than once", C + "?q=a&q=b"),
    case(f"GET {C}", "unknown parameter", 400, "unknown query parameter 'email'",
         C + "?email=jo@example.com"),
    gone(f"GET {C}/{{id}}", C + "/{b_contact}", "contact", "b_contact"),
    case(f"GET {C}/{{id}}", "unknown query parameter", 400, "unknown query parameter 'x'",
         C + "/{contact}?x=1"),
    gone(f"PATCH {C}/{{id}}", C + "/{b_contact}", "contact", "b_contact", {"first_name": "X"}),
    case(f"PATCH {C}/{{id}}", "not a phone number", 400, "phone", C + "/{contact}", {"phone": "call me"}),
    case(f"PATCH {C}/{{id}}", "the id cannot change", 400, "id: Extra inputs", C + "/{contact}",
         {"id": "ct_x"}),
    gone(f"GET {C}/{{id}}/notes", C + "/{b_contact}/notes", "contact", "b_contact"),
    case(f"GET {C}/{{id}}/notes", "unknown query parameter", 400, "unknown query parameter 'deal_id'",
         C + "/{contact}/notes?deal_id={deal}"),
    gone(f"POST {C}/{{id}}/notes", C + "/{b_contact}/notes", "contact", "b_contact", {"body": "x"}),
    case(f"POST {C}/{{id}}/notes", "note too long", 400, "body", C + "/{contact}/notes",
         {"body": "x" * 8001}),
    case(f"POST {C}/{{id}}/notes", "no body", 400, "body: Field required", C + "/{contact}/notes", {}),
    case(f"POST {C}/{{id}}/notes", "deal_id is not taken here", 400, "deal_id", C + "/{contact}/notes",
         with_ids({"body": "x", "deal_id": "{deal}"})),
    # -- CSV
    case("GET /api/v1/export/deals.csv", "a stage of another workflow", 400,
         "is not in workflow 'Home loans'",
         "/api/v1/export/deals.csv?workflow_id={wf}&stage_id={other_stage}"),
    case("GET /api/v1/export/deals.csv", "paging is not for export", 400,
         "unknown query parameter 'limit'", "/api/v1/export/deals.csv?limit=5"),
    case("GET /api/v1/export/deals.csv", "workflow of another node", 404, "workflow '{b_wf}' not found",
         "/api/v1/export/deals.csv?workflow_id={b_wf}"),
    case("GET /api/v1/export/contacts.csv", "paging is not for export", 400,
         "unknown query parameter 'offset'", "/api/v1/export/contacts.csv?offset=1"),
    case("POST /api/v1/import/deals", "JSON instead of CSV", 415, "Content-Type: text/csv",
         body={"title": "x"}),
    case("POST /api/v1/import/deals", "not UTF-8", 400, "not UTF-8",
         body=Csv(DEAL_HEADER.encode() + b"Caf\xe9,Home loans,New,,,,\n")),
    case("POST /api/v1/import/deals", "empty file", 400, "the file is empty", body=csv(""),
         rows=((1, "(header)"),)),
    case("POST /api/v1/import/deals", "unknown column and a missing one", 400, "nothing was imported",
         body=csv("title,workflow,colour\nLoan,Home loans,red\n"), rows=((1, "colour"), (1, "stage"))),
    case("POST /api/v1/import/deals", "one bad row among good ones", 400, "row 3, workflow",
         body=csv(DEAL_HEADER + "Good,Home loans,New,,,,\nBad,No such flow,New,,,,\n"
                  "Good too,Home loans,Lodged,,,,\n"),
         rows=((3, "workflow"),)),
    case("POST /api/v1/import/deals", "every problem of every row", 400, "nothing was imported",
         body=csv(DEAL_HEADER + "Loan,Home loans,Enquiry,1e5,AUD,,\n"
                  "Loan,Home loans,New,,,{b_contact}:primary,\n"),
         rows=((2, "stage"), (2, "amount"), (3, "contacts"))),
    case("POST /api/v1/import/deals", "an id already taken", 400, "already exists",
         body=csv(DEAL_HEADER + "Loan,Home loans,New,,,,{deal}\n"), rows=((2, "id"),)),
    case("POST /api/v1/import/contacts", "plain text", 415, "Content-Type: text/csv",
         body=csv(CONTACT_HEADER, "text/plain")),
    case("POST /api/v1/import/contacts", "one bad email", 400, "row 3, email",
         body=csv(CONTACT_HEADER + ",Al,One,al@example.com\n,Bo,Two,bo at example\n,Cy,Three,\n"),
         rows=((3, "email"),)),
    case("POST /api/v1/import/contacts", "the same id twice", 400, "repeats row 2",
         body=csv(CONTACT_HEADER + "ct_dup,Al,One,\nct_dup,Bo,Two,\n"), rows=((3, "id"),)),
    case("POST /api/v1/import/contacts", "an id already taken", 400, "already exists",
         body=csv(CONTACT_HEADER + "{contact},Al,One,\n"), rows=((2, "id"),)),
]
# fmt: on


def problem_with(c: Case, answer: Any, world: dict[str, Any],
                 codes: dict[int, set[str]] = CODES) -> str | None:
    """What is wrong with ``answer`` to case ``c``, or None: the status, an error object with
    a stable code for it (one of ``codes``), a message that says ``c.says``, and the field or
    rows it names."""
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    says = c.says.format(**world)
    if answer.status != c.status:
        return f"HTTP {answer.status}, wanted {c.status}: {answer.text[:300]}"
    if error is None or not {"code", "message"} <= set(error):
        return f"no error object: {answer.text[:300]}"
    if error["code"] not in codes[c.status]:
        return f"code {error['code']!r} for HTTP {c.status}"
    if c.exact and error["message"] != says:
        return f"message {error['message']!r}, wanted {says!r}"
    if says.casefold() not in error["message"].casefold():
        return f"message {error['message']!r} does not say {says!r}"
    if c.field is not None and error.get("field") != c.field:
        return f"field {error.get('field')!r}, wanted {c.field!r}"
    if c.rows is not None:
        listed = error.get("detail", {}).get("errors", [])
        got = sorted((e["row"], e["field"]) for e in listed)
        if got != sorted(c.rows) or not all(e["message"] for e in listed):
            return f"row errors {listed}, wanted {sorted(c.rows)}"
    return None


def token_cases(routes: dict[str, Any] | None = None, *, admin_only: set[str] | None = None,
                **fill: str) -> list[Case]:
    """No token and an unknown token on every route; a broker's token on the routes of
    ``admin_only`` (default :data:`ADMIN_ONLY`): the policy as written in the test, never
    each route's own flag, so that a route that loses its flag is caught by its 403 case.
    ``fill`` gives a value for path parameters other than ``{id}`` (default ``{any}``)."""
    admin = ADMIN_ONLY if admin_only is None else admin_only
    out: list[Case] = []
    for key, route in (ROUTES if routes is None else routes).items():
        url = route.path.replace("{id}", "{any}")
        for name in re.findall(r"\{(\w+)\}", url):
            if name != "any":
                url = url.replace("{" + name + "}", fill.get(name, "{any}"))
        out.append(case(key, "no token", 401, "send 'Authorization: Bearer <token>'", url, token="none",
                        exact=True))
        out.append(case(key, "unknown token", 401, "that token is unknown or revoked", url, token="bogus",
                        exact=True))
        if key in admin:
            out.append(case(key, "a broker", 403, "this needs an admin", url, token="ann", exact=True))
    return out


def test_the_table_covers_every_route():
    declared = {key for key, route in ROUTES.items() if route.admin_only}
    assert declared == ADMIN_ONLY, "admin-only routes differ from the policy written here"
    by_route: dict[str, list[Case]] = {}
    for c in CASES:
        assert c.route in ROUTES, f"case for a route that does not exist: {c.route}"
        by_route.setdefault(c.route, []).append(c)
    missing = [key for key in ROUTES if key not in by_route and key not in AUTH_ONLY]
    assert missing == [], f"routes without a bad-input case: {missing}"
    for key, route in ROUTES.items():
        cases = by_route.get(key, [])
        if "{" in route.path:
            assert any(c.status == 404 and "{b_" in c.url for c in cases), (
                f"{key}: no case with another node's id"
            )
        if route.body is not None:
            assert any(c.status == 400 and c.body is not None for c in cases), (
                f"{key}: no bad-body case"
            )


async def build_world(node_factory: Any) -> tuple[Any, dict[str, str]]:
    """Node A with users, three workflows, two contacts and a deal; node B with its own."""
    # A tries an unknown token on every route: far more wrong tokens than guessers are allowed.
    a = await node_factory("Alpha", auth_failures_per_min=10_000)
    b = await node_factory("Beta")
    w: dict[str, str] = {"any": "deal_0000000000000000000000000"}
    w["admin"] = (await a.api("GET", "/api/v1/users"))["users"][0]["id"]
    w["ann"] = await add_user(a, "ann@alpha.example", "Ann Broker")
    w["ann_token"] = await token_for(a, w["ann"])

    async def workflow(n: Any, name: str, owner: str, stages: list[str]) -> dict[str, Any]:
        body = {"name": name, "owner_user_id": owner, "stage_names": stages}
        return (await n.api("POST", "/api/v1/workflows", body, expect=201))["workflow"]

    home = await workflow(a, "Home loans", w["admin"], ["New", "Lodged", "Settled"])
    commercial = await workflow(a, "Commercial", w["ann"], ["Enquiry", "Approved"])
    solo = await workflow(a, "Solo", w["admin"], ["Only"])
    w |= {
        "wf": home["id"],
        "stage": home["stages"][0]["id"],
        "stage2": home["stages"][1]["id"],
        "wf2": commercial["id"],
        "other_stage": commercial["stages"][0]["id"],
        "solo": solo["id"],
        "solo_stage": solo["stages"][0]["id"],
    }
    jo = {"first_name": "Jo", "last_name": "Citizen", "email": "jo@example.com"}
    w["contact"] = (await a.api("POST", "/api/v1/contacts", jo, expect=201))["contact"]["id"]
    w["contact2"] = (await a.api("POST", "/api/v1/contacts", {"first_name": "Sam"}, expect=201))[
        "contact"
    ]["id"]
    deal = {
        "title": "Purchase",
        "workflow_id": w["wf"],
        "stage_id": w["stage"],
        "amount": "500000.00",
        "currency": "AUD",
        "contacts": [{"contact_id": w["contact"]}],
    }
    w["deal"] = (await a.api("POST", "/api/v1/deals", deal, expect=201))["deal"]["id"]
    await a.api("POST", f"/api/v1/deals/{w['deal']}/notes", {"body": "Called."}, expect=201)
    await a.api("POST", f"/api/v1/deals/{w['deal']}/documents", DOC, expect=201)

    w["b_user"] = (await b.api("GET", "/api/v1/users"))["users"][0]["id"]
    theirs = await workflow(b, "Home loans", w["b_user"], ["New"])
    w["b_wf"], w["b_stage"] = theirs["id"], theirs["stages"][0]["id"]
    w["b_contact"] = (await b.api("POST", "/api/v1/contacts", jo, expect=201))["contact"]["id"]
    b_deal = {"title": "Theirs", "workflow_id": w["b_wf"], "stage_id": w["b_stage"]}
    w["b_deal"] = (await b.api("POST", "/api/v1/deals", b_deal, expect=201))["deal"]["id"]
    return a, w


async def test_bad_input_is_refused_by_name_and_leaves_nothing_behind(node_factory):
    a, world = await build_world(node_factory)
    tokens = {"admin": a.token, "ann": world["ann_token"], "none": NONE, "bogus": "rnt_not-a-token"}
    before = await snapshot(a)
    problems: list[str] = []
    cases = CASES + token_cases()
    for c in cases:
        label = f"{c.route} [{c.what}]"
        token = tokens[c.token or ("admin" if c.route in ADMIN_ONLY else "ann")]
        body = c.body(world) if callable(c.body) else c.body
        answer = await call(a, c.route.split(" ")[0], c.url.format(**world), body, token=token)
        problem = problem_with(c, answer, world)
        if problem is not None:
            problems.append(f"{label}: {problem}")
        after = await snapshot(a)
        if after != before:
            changed = [t for t in after if after[t] != before[t]]
            problems.append(f"{label}: left changes behind in {changed}")
            before = after
    assert not problems, f"{len(problems)} of {len(cases)} cases failed:\n" + "\n".join(problems)
    # The world is still usable: the refusals above were not refusals of everything.
    assert (await a.api("GET", f"/api/v1/deals/{world['deal']}", token=world["ann_token"]))["deal"][
        "title"
    ] == "Purchase"
