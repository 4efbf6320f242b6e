"""Write the generated files: JSON Schemas (``schemas/``), test vectors (``docs/vectors/``),
and the indexes of the API's routes and the console's pages (:mod:`node.http.lazy`).

    python -m node.codegen            # (re)write every generated file
    python -m node.codegen --check    # exit 1, listing files that differ, are missing or extra
    python -m node.codegen --reseal   # also seal the decrypt-only envelopes afresh

The content comes from the pure functions :func:`protocol.schemas.json_schemas` and
:func:`node.codegen.vectors.build_vectors` (and, for the sealed envelopes,
:mod:`node.codegen.envelope_vectors`); this module only writes it. The decrypt-only
envelopes (HPKE sealing is randomised) are not compared byte for byte: they are kept as
long as they still open to the current message, and sealed again only when they do not
(or with ``--reseal``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from node.codegen.envelope_vectors import SEALED_FILE, build_sealed_vectors, check_sealed_vectors
from node.codegen.vectors import build_vectors
from node.http.routes import route_index
from node.web.site import page_index
from protocol.schemas import json_schemas

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = "schemas"
VECTOR_DIR = "docs/vectors"


def render(value: Any) -> str:
    """The text of a generated JSON file: indent 2, sorted keys, trailing newline."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generated() -> dict[str, str]:
    """Relative path -> text of every deterministic generated file."""
    files = {f"{SCHEMA_DIR}/{name}": render(schema) for name, schema in json_schemas().items()}
    files |= {f"{VECTOR_DIR}/{name}": render(doc) for name, doc in build_vectors().items()}
    # the route indexes a serving node adds its API and pages from (node.http.lazy)
    files["node/http/route_index.py"] = route_index()
    files["node/web/page_index.py"] = page_index()
    return files


def _existing(root: Path) -> set[str]:
    found: set[str] = set()
    for directory in (SCHEMA_DIR, VECTOR_DIR):
        found |= {str(p.relative_to(root)) for p in (root / directory).glob("*.json")}
    return found


def _sealed_problems(path: Path) -> list[str]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"unreadable: {exc}"]
    return check_sealed_vectors(doc)


def check(root: Path) -> list[str]:
    """Every difference between the files on disk and a fresh generation."""
    problems: list[str] = []
    files = generated()
    sealed = f"{VECTOR_DIR}/{SEALED_FILE}"
    for rel, text in sorted(files.items()):
        path = root / rel
        if not path.exists():
            problems.append(f"missing: {rel}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"differs: {rel}")
    if not (root / sealed).exists():
        problems.append(f"missing: {sealed}")
    else:
        problems += [f"stale: {sealed}: {p}" for p in _sealed_problems(root / sealed)]
    for rel in sorted(_existing(root) - set(files) - {sealed}):
        problems.append(f"extra: {rel}")
    return problems


def write(root: Path, *, reseal: bool = False) -> list[str]:
    """Write every generated file; remove extra ones. Returns what changed."""
    changed: list[str] = []
    files = generated()
    sealed = f"{VECTOR_DIR}/{SEALED_FILE}"
    for rel, text in sorted(files.items()):
        path = root / rel
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        changed.append(f"wrote: {rel}")
    sealed_path = root / sealed
    if reseal or not sealed_path.exists() or _sealed_problems(sealed_path):
        sealed_path.parent.mkdir(parents=True, exist_ok=True)
        sealed_path.write_text(render(build_sealed_vectors()), encoding="utf-8")
        changed.append(f"sealed: {sealed}")
    for rel in sorted(_existing(root) - set(files) - {sealed}):
        (root / rel).unlink()
        changed.append(f"removed: {rel}")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m node.codegen", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="compare only; exit 1 on any difference"
    )
    parser.add_argument(
        "--reseal", action="store_true", help="seal the decrypt-only envelopes again"
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="repository root (default: this checkout)"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.root)
        for line in problems:
            print(line)
        if problems:
            print("generated files are out of date: run python -m node.codegen", file=sys.stderr)
            return 1
        return 0
    for line in write(args.root, reseal=args.reseal):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
