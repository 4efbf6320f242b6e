"""node/'s rooms: imports run one way (import-linter's contracts in pyproject.toml), every
package of node/ is in a layer, and modules stay readable in one sitting."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "node"

#: Modules allowed past the line, each with the reason it stays whole.
LONGER: dict[str, str] = {
    "node/base/config.py": "one frozen model: each setting with its description, which is what refnode.toml's "
                           "documentation is generated from; splitting it would scatter the settings",
    "node/storage/db.py": "Database alone is about 440 lines: group commit, writes that go alone, the shared"
                          " writer's turns, syncs for reads and disk failures, which only make sense read together",
}
MAX_LINES = 400


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter over the tree at ``root`` (its pyproject.toml and packages)."""
    script = "import sys; from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run(
        [sys.executable, "-c", script, "--no-cache"],
        cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )


def scratch_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(ROOT / "pyproject.toml", tree)
    for package in ("node", "protocol", "conformance"):
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def test_the_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_package_of_node_is_in_a_layer() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layered = next(c for c in config["contracts"] if c["type"] == "layers")
    named = {name.strip() for layer in layered["layers"] for name in layer.split("|")}
    packages = {p.parent.name for p in NODE.glob("*/__init__.py")}
    assert packages == named
    assert not [p.name for p in NODE.glob("*.py") if p.name != "__init__.py"], "node/ holds only packages"


@pytest.mark.parametrize(
    ("module", "line"),
    [
        # the base reaching up into storage
        ("node/base/clock.py", "from node.storage import db  # noqa"),
        # storage reaching up into the CRM
        ("node/storage/records.py", "from node.crm import models  # noqa"),
        # the CRM reaching up into the federation
        ("node/crm/errors.py", "import node.federation.outbox  # noqa"),
        # the domain reaching up into an entry point
        ("node/federation/evidence.py", "from node.http import app  # noqa"),
        # protocol/ reaching into the node
        ("protocol/errors.py", "import node.base.ids  # noqa"),
        # protocol/ doing I/O
        ("protocol/errors.py", "import sqlite3  # noqa"),
        # the conformance suite reaching past HTTP into a node's internals or its database
        ("conformance/peer.py", "from node.storage import store  # noqa"),
        ("conformance/target.py", "import sqlite3  # noqa"),
    ],
)
def test_a_wrong_way_import_breaks_a_contract(tmp_path: Path, module: str, line: str) -> None:
    tree = scratch_tree(tmp_path)
    assert lint_imports(tree).returncode == 0  # the copy alone is fine
    path = tree / module
    path.write_text(path.read_text() + "\n" + line + "\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


def test_modules_stay_readable_in_one_sitting() -> None:
    too_long = {
        str(p.relative_to(ROOT)): n
        for p in [*NODE.rglob("*.py"), *(ROOT / "conformance").rglob("*.py")]
        if (n := len(p.read_text().splitlines())) > MAX_LINES and str(p.relative_to(ROOT)) not in LONGER
    }
    assert not too_long, f"split these along the ideas they hold (or say in LONGER why not): {too_long}"
