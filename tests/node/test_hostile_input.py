"""What a hostile client sends the admin API (issue 11, items 1, 2, 3 and 9): deeply
nested JSON, numbers past SQLite's range, control characters in text, and requests the
OpenAPI document forbids. Each is refused with a 4xx naming what to fix, never a 500,
and leaves every table as it was.

The schemathesis run that holds the server to its whole document is in
``test_openapi_fuzz.py``; these are the cases found by hand, one per mechanism.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import RunningNode
from crm_api.conftest import Csv, call
from pydantic import BaseModel
from test_bad_input_core import snapshot

from node.federation.delivery import _error_code
from node.http.openapi import openapi
from node.http.routes import ALL
from protocol import messages

INT64_MAX = 2**63 - 1  # SQLite's largest integer
DEEP = "[" * 100_000 + "]" * 100_000


async def world(n: RunningNode) -> dict[str, str]:
    """A workflow, a deal and two contacts, so that a search matching everything shows."""
    user = (await n.api("GET", "/api/v1/users"))["users"][0]["id"]
    wf = (await n.api("POST", "/api/v1/workflows", {"name": "Loans", "owner_user_id": user,
                                                    "stage_names": ["New", "Done"]}, expect=201))["workflow"]
    ann = (await n.api("POST", "/api/v1/contacts", {"first_name": "Ann"}, expect=201))["contact"]["id"]
    await n.api("POST", "/api/v1/contacts", {"first_name": "Bob"}, expect=201)
    await n.api("POST", "/api/v1/deals", {"title": "Ann's loan", "workflow_id": wf["id"],
                                          "stage_id": wf["stages"][0]["id"]}, expect=201)
    return {"workflow": wf["id"], "contact": ann}


async def refused(n: RunningNode, method: str, path: str, body: Any = None, *, status: int = 400,
                  field: str | None = None, says: str = "") -> dict[str, Any]:
    """The call is refused with ``status`` naming ``field``, and nothing is written."""
    before = await snapshot(n)
    answer = await call(n, method, path, body)
    assert answer.status == status, (method, path, answer.status, answer.text[:300])
    error = answer.body["error"]
    if field is not None:
        assert error.get("field") == field, error
    assert says in error["message"], error
    assert await snapshot(n) == before
    return error


# -- item 1: deeply nested JSON --------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/contacts", "/api/v1/invitations", "/api/v1/deals"])
async def test_deeply_nested_json_is_a_400_not_a_500(node_factory: Any, path: str) -> None:
    n = await node_factory("Alpha")
    error = await refused(n, "POST", path, Csv(DEEP, "application/json"), field="(body)", says="nested too deeply")
    assert error["code"] == "malformed"
    # nesting the parser copes with is still refused, by where it goes too deep
    shallow = "[" * 200 + "]" * 200
    await refused(n, "POST", path, Csv(f'{{"custom_fields": {shallow}}}', "application/json"),
                  says="nested too deeply")


def test_a_peers_deeply_nested_answer_has_no_error_code() -> None:
    assert _error_code(DEEP.encode()) is None
    assert _error_code(b'{"error": {"code": ' + DEEP.encode() + b"}}") is None
    assert _error_code(b'{"error": {"code": "replayed"}}') == "replayed"


# -- item 2: numbers past their range --------------------------------------------------


async def test_huge_numbers_in_paths_queries_and_bodies_are_refused_by_name(node_factory: Any) -> None:
    n = await node_factory("Alpha")
    w = await world(n)
    huge = "99999999999999999999999"
    await refused(n, "POST", f"/api/v1/outbox/{huge}/retry", field="seq", says=str(INT64_MAX))
    await refused(n, "POST", "/api/v1/outbox/0/retry", field="seq", says="greater than or equal to 1")
    await refused(n, "POST", f"/api/v1/outbox/{INT64_MAX + 1}/retry", field="seq")
    for path in ("/api/v1/deals", "/api/v1/contacts"):
        await refused(n, "GET", f"{path}?offset={huge}", field="offset")
        await refused(n, "GET", f"{path}?offset={INT64_MAX + 1}", field="offset")
        await refused(n, "GET", f"{path}?offset=-1", field="offset")
        await refused(n, "GET", f"{path}?limit=0", field="limit")
        await refused(n, "GET", f"{path}?limit=1001", field="limit")
        await refused(n, "GET", f"{path}?limit=1.0", field="limit")
        assert (await n.api("GET", f"{path}?offset={INT64_MAX}"))["offset"] == INT64_MAX
    stages = f"/api/v1/workflows/{w['workflow']}/stages"
    await refused(n, "POST", stages, {"name": "Later", "position": 10**20}, field="position", says=str(INT64_MAX))
    await refused(n, "POST", stages, {"name": "Later", "position": -(10**20)}, field="position")


# -- item 3: control characters in text ------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/contacts", "/api/v1/deals", "/api/v1/export/contacts.csv",
                                  "/api/v1/export/deals.csv"])
async def test_a_control_character_in_a_search_is_refused_not_a_match_for_everything(
        node_factory: Any, path: str) -> None:
    n = await node_factory("Alpha")
    await world(n)
    for q in ("%00", "Ann%00", "%7F", "%09Ann", "%1B"):
        await refused(n, "GET", f"{path}?q={q}", field="q", says="q")
    if path.endswith(".csv"):
        assert (await call(n, "GET", f"{path}?q=Ann")).text.count("Ann") >= 1
    else:
        key = path.rsplit("/", 1)[1]
        assert len((await n.api("GET", f"{path}?q=Ann"))[key]) == 1


async def test_control_characters_in_bodies_are_refused_naming_the_field(node_factory: Any) -> None:
    n = await node_factory("Alpha")
    w = await world(n)
    contact = f"/api/v1/contacts/{w['contact']}"
    await refused(n, "POST", "/api/v1/contacts", {"first_name": "A\u0000nn"}, field="first_name",
                  says="U+0000 at character 2")
    await refused(n, "POST", "/api/v1/contacts", {"first_name": "Ann\u007f"}, field="first_name", says="U+007F")
    await refused(n, "POST", "/api/v1/contacts", {"first_name": "\tAnn"}, field="first_name", says="one line")
    await refused(n, "PATCH", contact, {"address": {"line1": "1 Main St\nApt 2"}}, field="address.line1")
    await refused(n, "PATCH", contact, {"custom_fields": {"note": "a\u0000b"}}, field="custom_fields.note")
    await refused(n, "POST", "/api/v1/invitations", {"name": "Harbour\u0000"}, field="name")
    await refused(n, "POST", "/api/v1/users", {"email": "a\u0000@x.example", "name": "A"}, field="email")
    # a lone surrogate is no text at all, wherever it is
    raw = '{"first_name": "Ann\\ud800"}'
    await refused(n, "POST", "/api/v1/contacts", Csv(raw, "application/json"), field="first_name",
                  says="lone surrogate")
    # a note may hold line breaks and tabs (CR LF as browsers send them), but no other control
    note = f"{contact}/notes"
    ok = await n.api("POST", note, {"body": "Called:\r\n\t- left a message"}, expect=201)
    assert ok["note"]["body"] == "Called:\r\n\t- left a message"
    await refused(n, "POST", note, {"body": "bell\u0007"}, field="body", says="U+0007")


async def test_csv_import_refuses_control_characters_by_row_and_column(node_factory: Any) -> None:
    n = await node_factory("Alpha")
    error = await refused(n, "POST", "/api/v1/import/contacts",
                          Csv("first_name,last_name,custom.note\nAnn,Smith,ok\nB\x00b,Jones,\"two\nlines\"\n"))
    assert error["detail"]["errors"] == [
        {"row": 3, "field": "first_name", "message": "must not contain control characters: U+0000 at character 2"}]
    # a line break is fine in a custom field, not in a name
    await refused(n, "POST", "/api/v1/import/contacts", Csv('first_name\n"Ann\nMarie"\n'), says="one line")
    done = await call(n, "POST", "/api/v1/import/contacts", Csv('first_name,custom.note\nAnn,"two\nlines"\n'))
    assert done.status == 201, done.text


async def test_text_stored_before_the_rule_is_still_readable(node_factory: Any) -> None:
    n = await node_factory("Alpha")
    w = await world(n)

    def legacy(conn: Any) -> None:  # as an import before this change could leave it
        conn.execute("UPDATE contacts SET first_name = ? WHERE id = ?", ("A\tnn\u0000", w["contact"]))

    await n.node.db.write(legacy)
    listed = await n.api("GET", "/api/v1/contacts")
    assert "A\tnn\u0000" in [c["first_name"] for c in listed["contacts"]]
    assert (await n.api("GET", f"/api/v1/contacts/{w['contact']}"))["contact"]["first_name"] == "A\tnn\u0000"


# -- found by schemathesis with real ids ----------------------------------------------


async def test_a_note_quoting_a_long_reason_is_cut_to_fit_not_a_500(node_factory: Any) -> None:
    n = await node_factory("Alpha")
    await world(n)
    deal = (await n.api("GET", "/api/v1/deals"))["deals"][0]["id"]
    reason = "x" * 8000  # the longest reason: with the note's opening, past a note's 8000
    made = await n.api("POST", "/api/v1/opportunities", {"deal_id": deal, "referral_type": "mortgage",
                                                        "outcome": "other", "reason": reason}, expect=201)
    assert made["opportunity"]["reason"] == reason  # kept whole where it belongs
    notes = (await n.api("GET", f"/api/v1/deals/{deal}/notes"))["notes"]
    assert len(notes[-1]["body"]) == 8000 and notes[-1]["body"].endswith("\u2026")
    closed = await n.api("POST", f"/api/v1/opportunities/{made['opportunity']['id']}/close", {"reason": reason})
    assert closed["opportunity"]["state"] == "closed"


# -- item 9: the server keeps to its OpenAPI document ----------------------------------


async def test_a_405_says_which_methods_the_path_takes(node_factory: Any) -> None:
    n = await node_factory("Alpha")
    answer = await call(n, "DELETE", "/api/v1/contacts")
    assert answer.status == 405
    assert set(answer.headers["Allow"].split(",")) >= {"GET", "POST"}
    assert answer.body["error"]["code"] == "method_not_allowed"


async def test_a_body_the_document_forbids_is_refused(node_factory: Any) -> None:
    n = await node_factory("Alpha")
    # no body: the document says a body is required ({} for the defaults)
    await refused(n, "POST", "/api/v1/tokens", field="(body)", says="{}")
    assert (await call(n, "POST", "/api/v1/tokens", {})).status == 201
    # strict types: a bool is not an integer, nor is "3600" or 3600.5 (3600.0 is, as in JSON Schema)
    for ttl in (True, "3600", 3600.5):
        await refused(n, "POST", "/api/v1/invitations", {"name": "X", "ttl_s": ttl}, field="ttl_s")
    made = await n.api("POST", "/api/v1/invitations", {"name": "X", "ttl_s": 3600.0}, expect=201)
    assert made["invitation"]["expires_at"] > made["invitation"]["created_at"]
    await refused(n, "PATCH", "/api/v1/users/nobody", {"active": 0}, field="active")
    # JSON, sent as JSON
    await refused(n, "POST", "/api/v1/contacts", Csv('{"first_name": "Ann"}', "text/plain"), status=415)
    await refused(n, "POST", "/api/v1/contacts", Csv('{"first_name": "A", "first_name": "B"}', "application/json"),
                  says="appears twice")
    # a padded name longer than the document's maxLength is not quietly stripped to fit
    await refused(n, "POST", "/api/v1/contacts", {"first_name": "Ann" + " " * 200}, field="first_name")


def test_the_document_describes_queries_statuses_and_media_types() -> None:
    doc = openapi(ALL)
    deals = doc["paths"]["/api/v1/deals"]["get"]
    params = {p["name"]: p for p in deals["parameters"]}
    assert {"q", "limit", "offset", "workflow_id", "stage_id", "owner_user_id", "contact_id", "folder", "label",
            "origin"} <= set(params)
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    assert params["offset"]["schema"] == {"type": "integer", "minimum": 0, "maximum": INT64_MAX}
    assert "\\u0000" in params["q"]["schema"]["pattern"]
    retry = doc["paths"]["/api/v1/outbox/{seq}/retry"]["post"]
    assert retry["parameters"][0]["schema"] == {"type": "integer", "minimum": 1, "maximum": INT64_MAX}
    export = doc["paths"]["/api/v1/export/deals.csv"]["get"]
    assert list(export["responses"]["200"]["content"]) == ["text/csv"]
    imports = doc["paths"]["/api/v1/import/contacts"]["post"]
    assert list(imports["requestBody"]["content"]) == ["text/csv"]
    assert {"413", "415", "429"} <= set(imports["responses"])
    tokens = doc["paths"]["/api/v1/tokens"]["post"]
    assert tokens["requestBody"]["required"] is True
    assert {"400", "401", "403", "413", "415", "429"} <= set(tokens["responses"])
    # every integer anywhere in a body is bounded, every free text has a pattern
    for name, schema in doc["components"]["schemas"].items():
        text = json.dumps(schema)
        assert '"type": "integer"' not in text or '"maximum"' in text, name
    # two models of one name (the CRM's and the protocol's Address) both keep their schema
    assert {"node__crm__models__Address", "protocol__messages__Address"} <= set(doc["components"]["schemas"])


def test_every_text_field_of_the_nodes_own_input_models_has_the_text_rule() -> None:
    """A new ``str`` field without the rule fails here: each string in a node model's
    schema carries a pattern (the text rule, or a stricter one), an enum or a format.
    Protocol models (the wire's, inside POST /referrals) get the body-wide rule only."""
    wire = {name for name, obj in vars(messages).items() if isinstance(obj, type) and issubclass(obj, BaseModel)}
    bare: list[str] = []
    for route in ALL:
        for model in [route.body, route.query]:
            if model is None:
                continue
            schema = model.model_json_schema()
            own = {k: v for k, v in schema.get("$defs", {}).items() if k not in wire}
            for path, node in _strings({**schema, "$defs": own}):
                if not ({"pattern", "enum", "const", "format"} & node.keys()):
                    bare.append(f"{model.__module__}.{model.__name__}: {path}")
    assert not bare, "\n".join(sorted(set(bare)))


def _strings(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(schema, dict):
        if schema.get("type") == "string":
            out.append((path, schema))
        for key, value in schema.items():
            if key not in ("default", "examples", "enum", "const"):
                out += _strings(value, f"{path}.{key}" if path else key)
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            out += _strings(value, f"{path}.{i}")
    return out
