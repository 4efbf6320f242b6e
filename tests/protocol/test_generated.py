"""Generated files: the committed schemas and vectors equal a fresh generation, the check
notices when they do not, and the schemas accept what our code writes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from protocol_support import ROOT, load_vector

from protocol.schemas import json_schemas
from protocol.wire import MessageType

#: Generated too: the indexes a serving node adds its API routes and pages from.
INDEXES = ("node/http/route_index.py", "node/web/page_index.py")


def codegen(*args: str, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.codegen", *args, "--root", str(root)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_committed_files_equal_a_fresh_generation() -> None:
    result = codegen("--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_check_reports_every_kind_of_difference(tmp_path: Path) -> None:
    for directory in ("schemas", "docs/vectors"):
        shutil.copytree(ROOT / directory, tmp_path / directory)
    for index in INDEXES:  # the route indexes of node.http.lazy
        (tmp_path / index).parent.mkdir(parents=True)
        shutil.copy(ROOT / index, tmp_path / index)
    assert codegen("--check", root=tmp_path).returncode == 0
    (tmp_path / INDEXES[1]).write_text((ROOT / INDEXES[1]).read_text().replace('"/login"', '"/signin"'))
    (tmp_path / "schemas/receipt.schema.json").write_text("{}\n")
    (tmp_path / "docs/vectors/keys.json").unlink()
    (tmp_path / "schemas/stray.schema.json").write_text("{}\n")
    sealed = tmp_path / "docs/vectors/envelopes-decrypt-only.json"
    doc = json.loads(sealed.read_text())
    doc["vectors"][0]["message"]["referral_id"] = "ref-9999"
    sealed.write_text(json.dumps(doc))
    result = codegen("--check", root=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "differs: schemas/receipt.schema.json" in lines
    assert f"differs: {INDEXES[1]}" in lines
    assert "missing: docs/vectors/keys.json" in lines
    assert "extra: schemas/stray.schema.json" in lines
    assert any(line.startswith("stale: docs/vectors/envelopes-decrypt-only.json") for line in lines)
    # Writing repairs all of it; sealed envelopes are only replaced because they were stale.
    written = codegen(root=tmp_path)
    assert written.returncode == 0, written.stderr
    assert "sealed: docs/vectors/envelopes-decrypt-only.json" in written.stdout
    assert codegen("--check", root=tmp_path).returncode == 0


def test_sealed_vectors_are_kept_while_they_still_open(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "docs/vectors", tmp_path / "docs/vectors")
    before = (tmp_path / "docs/vectors/envelopes-decrypt-only.json").read_bytes()
    result = codegen(root=tmp_path)
    assert "sealed:" not in result.stdout  # schemas/ was missing and is written; vectors kept
    assert (tmp_path / "docs/vectors/envelopes-decrypt-only.json").read_bytes() == before


def test_generated_files_are_pretty_sorted_and_end_with_a_newline() -> None:
    for path in [
        *ROOT.joinpath("schemas").glob("*.json"),
        *ROOT.joinpath("docs/vectors").glob("*.json"),
    ]:
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n") and text.startswith('{\n  "'), path
        assert (
            text
            == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )


# --- the schemas -----------------------------------------------------------------------



def _schemas() -> dict[str, Any]:
    """Built in the test that asks (not when this module loads), so that each test that
    reads the schemas runs the code that builds them (mutation testing sees it)."""
    return json_schemas()


def test_the_schemas_built_in_process_are_the_committed_files() -> None:
    """As codegen --check, in this process: every schema equals its file in schemas/."""
    built = _schemas()
    assert {f"{name}" for name in built} == {p.name for p in (ROOT / "schemas").glob("*.json")}
    for name, schema in built.items():
        assert schema == json.loads((ROOT / "schemas" / name).read_text(encoding="utf-8")), name


def test_one_schema_per_message_type_and_document() -> None:
    expected = {f"{t.value}.schema.json" for t in MessageType} | {
        "envelope.schema.json", "envelope-header.schema.json", "inner-header.schema.json",
        "discovery.schema.json", "receipt.schema.json", "invitation.schema.json",
    }  # fmt: skip
    assert set(schemas := _schemas()) == expected
    for name, schema in schemas.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"https://refnode.example/schemas/v1/{name}"
        assert schema["title"].startswith("refnode ")
        jsonschema.Draft202012Validator.check_schema(schema)


def _validate(schema_name: str, instance: Any) -> None:
    jsonschema.Draft202012Validator(_schemas()[schema_name]).validate(instance)


def test_schemas_accept_what_we_write() -> None:
    signing = load_vector("envelope-signing.json")
    _validate("referral-offer.schema.json", signing["message"])
    _validate("envelope.schema.json", json.loads(signing["outer"]["envelope"]))
    _validate("envelope-header.schema.json", signing["outer"]["protected_header"])
    _validate("inner-header.schema.json", signing["inner"]["protected_header"])
    for doc in load_vector("discovery.json")["documents"]:
        _validate("envelope.schema.json", json.loads(doc["signed"]))
        _validate("discovery.schema.json", doc["document"])
    for case in load_vector("receipts.json")["receipts"].values():
        _validate("envelope.schema.json", json.loads(case["receipt"]))
        _validate("receipt.schema.json", case["payload"])
    _validate("invitation.schema.json", load_vector("invitations.json")["invitation"])


def test_schemas_refuse_what_our_models_refuse() -> None:
    message = load_vector("envelope-signing.json")["message"]
    with pytest.raises(jsonschema.ValidationError):
        _validate("referral-offer.schema.json", dict(message, priority="high"))
    with pytest.raises(jsonschema.ValidationError):
        _validate(
            "referral-offer.schema.json", {k: v for k, v in message.items() if k != "consent"}
        )
    envelope = json.loads(load_vector("envelope-signing.json")["outer"]["envelope"])
    with pytest.raises(jsonschema.ValidationError):
        _validate("envelope.schema.json", dict(envelope, header={}))
    with pytest.raises(jsonschema.ValidationError):
        _validate("envelope.schema.json", dict(envelope, payload="a+b"))
    receipt = load_vector("receipts.json")["receipts"]["accepted"]["payload"]
    renamed = {("from_" if k == "from" else k): v for k, v in receipt.items()}
    with pytest.raises(jsonschema.ValidationError):
        _validate("receipt.schema.json", renamed)
    header = load_vector("envelope-signing.json")["outer"]["protected_header"]
    _validate("envelope-header.schema.json", header)
    with pytest.raises(jsonschema.ValidationError):
        _validate("envelope-header.schema.json", dict(header, alg="EdDSA"))
