"""Every file the node reads from its own folders at run time (templates, CSS and JS, mail
templates, the fact-find catalogue) is named by pyproject's package-data, so that a wheel
holds it: without it, `pip install referral-node` would give pages without templates."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_file_of_the_packages_that_is_not_python_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["node"]
    data = [p.relative_to(ROOT / "node").as_posix() for p in (ROOT / "node").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert len(data) > 100  # the templates alone are more
    missed = [f for f in data if not any(fnmatch.fnmatchcase(f, pattern) for pattern in patterns)]
    assert missed == []
    for package in ("protocol", "conformance"):  # pure Python: nothing to ship beside the code
        assert [p for p in (ROOT / package).rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
                and "__pycache__" not in p.parts] == []
