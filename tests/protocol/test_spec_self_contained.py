"""docs/protocol.md stands alone: a third party has the spec, schemas/ and docs/vectors/,
not our code. So the spec points to no source file or test of ours, and every vector file
and schema it names exists and is described (issue 15, gap 11)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")


def test_no_pointer_into_our_code() -> None:
    # Paths of our source and tests (the wire paths /refnode/v1/... are not code paths).
    pointers = re.findall(r"(?<![\w/.-])(?:tests|protocol|node|bench|examples)/[\w./-]*", SPEC)
    assert pointers == [], pointers
    assert not re.findall(r"\b[\w/]+\.py\b", SPEC)
    assert "in this repository" not in SPEC


def test_every_vector_file_is_described_in_section_19() -> None:
    section = SPEC.split("## 19. Test vectors", 1)[1].split("\n## ", 1)[0]
    described = set(re.findall(r"^\| `([a-z-]+\.json)` \|", section, re.MULTILINE))
    on_disk = {p.name for p in (ROOT / "docs" / "vectors").glob("*.json")}
    assert described == on_disk


def test_every_json_file_the_spec_names_exists() -> None:
    named = set(re.findall(r"`([a-z-]+)\.json`", SPEC)) | set(
        re.findall(r"`([a-z-]+)\.schema\.json`", SPEC)
    )
    vectors = {p.stem for p in (ROOT / "docs" / "vectors").glob("*.json")}
    schemas = {
        p.name.removesuffix(".schema.json") for p in (ROOT / "schemas").glob("*.schema.json")
    }
    assert named <= vectors | schemas, sorted(named - vectors - schemas)
    for stem in ("envelope", "envelope-header", "inner-header"):
        assert stem in schemas  # the header table names these three by hand
