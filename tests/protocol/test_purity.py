"""protocol/ is pure: no I/O, no clock, no randomness of its own, and it never reaches
into node/ or the node's dependencies. Checked in the source (ast) and at import time."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "protocol"
MODULES = sorted(p.stem for p in PROTOCOL.glob("*.py") if p.stem != "__init__")

#: Never imported by protocol/, directly or through anything it imports.
NEVER = {"node", "aiohttp", "sqlite3", "sqlite_utils", "apscheduler", "structlog"}
#: Never imported by protocol/ source: I/O, concurrency, clock and randomness.
FORBIDDEN_IMPORTS = NEVER | {
    "asyncio", "socket", "ssl", "select", "selectors", "os", "io", "pathlib", "shutil",
    "tempfile", "subprocess", "threading", "multiprocessing", "concurrent", "http",
    "urllib.request", "requests", "httpx", "random", "secrets", "uuid", "time", "logging",
}  # fmt: skip
#: Calls that read the clock, draw randomness or do I/O, whatever they are imported as.
FORBIDDEN_CALLS = {
    "now", "utcnow", "today", "time", "time_ns", "monotonic", "perf_counter", "urandom",
    "token_bytes", "token_hex", "token_urlsafe", "uuid1", "uuid4", "getrandbits",
    "randbytes", "open", "print", "input", "eval", "exec", "__import__", "import_module",
}  # fmt: skip


def _forbidden(module: str, names: set[str]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in names)


def violations(source: str) -> list[str]:
    """Imports and calls in ``source`` that protocol/ must not have."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                f"import {a.name}" for a in node.names if _forbidden(a.name, FORBIDDEN_IMPORTS)
            ]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and _forbidden(module, FORBIDDEN_IMPORTS):
                found.append(f"from {module} import ...")
            elif (
                node.level == 0
            ):  # from urllib import parse is fine; from urllib import request is not
                found += [
                    f"from {module} import {a.name}"
                    for a in node.names
                    if _forbidden(f"{module}.{a.name}", FORBIDDEN_IMPORTS)
                ]
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in FORBIDDEN_CALLS:
                found.append(f"call {ast.unparse(func)}()")
    return found


@pytest.mark.parametrize("module", MODULES)
def test_source_imports_and_calls_nothing_impure(module: str) -> None:
    source = (PROTOCOL / f"{module}.py").read_text(encoding="utf-8")
    assert violations(source) == []


def test_the_checker_catches_what_it_should() -> None:
    source = """
import os
import asyncio.events
from node.storage.store import Store
from time import time
from urllib import request
from datetime import datetime
stamp = datetime.now()
data = os.urandom(16)
with open("x") as f: pass
"""
    assert sorted(violations(source)) == [
        "call datetime.now()",
        "call open()",
        "call os.urandom()",
        "from node.storage.store import ...",
        "from time import ...",
        "from urllib import request",
        "import asyncio.events",
        "import os",
    ]
    clean = "from datetime import UTC, datetime\nfrom urllib import parse\nx = datetime.strptime('', '')"
    assert violations(clean) == []


def _third_party_imports() -> list[str]:
    """Every module protocol/ imports that is not part of protocol/ itself."""
    names: set[str] = set()
    for path in PROTOCOL.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    return sorted(n for n in names if n.split(".")[0] not in ("protocol", "__future__"))


_PRINT_MODULES = "import json, sys\nprint(json.dumps(sorted(sys.modules)))\n"


def _run(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code + "\n" + _PRINT_MODULES],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _modules(proc: subprocess.Popen[str]) -> set[str]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return set(json.loads(out))


def test_importing_protocol_pulls_in_nothing_impure() -> None:
    # pydantic-core imports asyncio (and with it socket, ssl, subprocess) at import time,
    # so "never in sys.modules" cannot hold for those; what protocol/ adds on top of the
    # libraries it uses must be clean, and the node's own stack must never appear. The
    # baseline also builds a model: that is when pydantic imports the rest of itself.
    baseline = _run(
        "\n".join(f"import {name}" for name in _third_party_imports())
        + "\nclass M(pydantic.BaseModel):\n    x: int"
    )
    procs = {module: _run(f"import protocol.{module}") for module in MODULES}
    base = _modules(baseline)
    assert "pydantic" in base and not {m for m in base if _forbidden(m, NEVER)}
    for module, proc in procs.items():
        loaded = _modules(proc)
        assert f"protocol.{module}" in loaded
        assert {m for m in loaded if _forbidden(m, NEVER)} == set(), module
        added = loaded - base
        assert {m for m in added if _forbidden(m, FORBIDDEN_IMPORTS)} == set(), module
