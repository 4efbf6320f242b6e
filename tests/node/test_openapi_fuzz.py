"""The admin API against its own OpenAPI document, fuzzed by schemathesis: every
operation, with a valid admin token and a fixed seed, on a real node process.

What must hold: no server error, every status and media type the document lists, every
documented header present, every answer matching its schema, every request the document
forbids refused with a 4xx (``negative_data_rejection``: the document is not looser than
the server), a 405 with ``Allow`` for a method a path does not take, and a 401 without the
token. Requests the document allows may still be refused for rules no schema states (an
id this node does not hold, a stage outside its workflow), so ``positive_data_acceptance``
is not among the checks.

The budget is short (``MAX_EXAMPLES`` per operation after the deterministic coverage
phase); a longer run by hand::

    PYTHONPATH=$PWD:$PWD/tests/node SCHEMATHESIS_HOOKS=fuzz.hooks \\
        st run http://127.0.0.1:PORT/api/v1/openapi.json -H "Authorization: Bearer TOKEN" \\
        --checks <CHECKS below> --seed 20261203 --max-examples 300 --workers 1
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def test_the_admin_api_keeps_to_its_openapi_document(tmp_path: Path) -> None:
    node = make_proc_node(tmp_path, "Fuzz")
    node.start()
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "fuzz.hooks",
           "PYTHONPATH": os.pathsep.join([str(TESTS.parent.parent), str(TESTS)])}
    try:
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{node.url}/api/v1/openapi.json",
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
