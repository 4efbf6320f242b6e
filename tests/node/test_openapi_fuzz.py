"""The admin API against its own OpenAPI document, fuzzed by schemathesis: every
operation, with a valid admin token and a fixed seed, on a real node process.

What must hold: no server error, every status and media type the document lists, every
documented header present, every answer matching its schema, every request the document
forbids refused with a 4xx (``negative_data_rejection``: the document is not looser than
the server), a 405 with ``Allow`` for a method a path does not take, and a 401 without the
token. Requests the document allows may still be refused for rules no schema states (an
id this node does not hold, a stage outside its workflow), so ``positive_data_acceptance``
is not among the checks.

Before the run the node gets a workflow, a contact, a deal with a note, an opportunity, an
invitation and a broker, and the operations on those take their real ids (the rest get
generated ones, mostly unknown): so fuzzed bodies reach the handlers, not only the parser.

The budget is short (``MAX_EXAMPLES`` per operation after the deterministic coverage
phase); a longer run by hand::

    PYTHONPATH=$PWD:$PWD/tests/node SCHEMATHESIS_HOOKS=fuzz.hooks \\
        st run http://127.0.0.1:PORT/api/v1/openapi.json -H "Authorization: Bearer TOKEN" \\
        --checks <CHECKS below> --seed 20261203 --max-examples 300 --workers 1 \\
        --config-file <a schemathesis.toml as ``real_ids`` writes>
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from procs import make_proc_node

from node.http import routes

pytestmark = pytest.mark.slow

CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
    "missing_required_header", "unsupported_method", "allow_header_conformance", "ignored_auth",
])  # fmt: skip
SEED = "20261203"
MAX_EXAMPLES = "3"
TESTS = Path(__file__).resolve().parent


def real_ids(url: str, token: str, config: Path) -> None:
    """Give the node one of each thing a path names, and write a schemathesis config that
    puts their ids in those paths."""

    def api(method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode(), headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (our node on 127.0.0.1)
            return json.loads(answer.read())

    admin = api("GET", "/api/v1/users")["users"][0]["id"]
    broker = api("POST", "/api/v1/users", {"email": "b@fuzz.example", "name": "Broker"})["user"]["id"]
    wf = api("POST", "/api/v1/workflows", {"name": "Loans", "owner_user_id": admin,
                                           "stage_names": ["New", "Mid", "Done"]})["workflow"]
    contact = api("POST", "/api/v1/contacts", {"first_name": "Ann"})["contact"]["id"]
    deal = api("POST", "/api/v1/deals", {"title": "Loan", "workflow_id": wf["id"], "stage_id": wf["stages"][0]["id"],
                                         "contacts": [{"contact_id": contact}]})["deal"]["id"]
    api("POST", f"/api/v1/deals/{deal}/notes", {"body": "Called"})
    opportunity = api("POST", "/api/v1/opportunities", {"deal_id": deal, "referral_type": "mortgage",
                                                        "outcome": "client_declined"})["opportunity"]["id"]
    invitation = api("POST", "/api/v1/invitations", {"name": "Harbour"})["invitation"]["id"]
    ids = {
        "contacts/\\{id\\}": {"path.id": contact},
        "deals/\\{id\\}": {"path.id": deal, "path.contact_id": contact},
        "workflows/\\{id\\}": {"path.id": wf["id"]},
        "stages/\\{id\\}$": {"path.id": wf["stages"][1]["id"]},
        "users/\\{id\\}$": {"path.id": broker},
        "invitations/\\{id\\}": {"path.id": invitation},
        "opportunities/\\{id\\}": {"path.id": opportunity},
    }
    config.write_text("".join(
        f"[[operations]]\ninclude-path-regex = {json.dumps('^/api/v1/' + path)}\n"
        f"parameters = {{{', '.join(f'{json.dumps(k)} = {json.dumps(v)}' for k, v in params.items())}}}\n\n"
        for path, params in ids.items()))


def test_the_admin_api_keeps_to_its_openapi_document(tmp_path: Path) -> None:
    node = make_proc_node(tmp_path, "Fuzz")
    node.start()
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "fuzz.hooks",
           "PYTHONPATH": os.pathsep.join([str(TESTS.parent.parent), str(TESTS)])}
    try:
        real_ids(node.url, node.token, tmp_path / "schemathesis.toml")
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(tmp_path / "schemathesis.toml"),
             "run", f"{node.url}/api/v1/openapi.json",
             "--header", f"Authorization: Bearer {node.token}", "--checks", CHECKS, "--seed", SEED,
             "--max-examples", MAX_EXAMPLES, "--phases", "coverage,fuzzing", "--workers", "1",
             "--generation-database", "none", "--no-color", "--request-timeout", "20"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False,
        )
    finally:
        node.stop()
    output = run.stdout[-12000:] + run.stderr[-2000:]
    assert run.returncode == 0, output
    assert f"Tested: {len(routes.ALL)}" in run.stdout, output  # every operation was reached
