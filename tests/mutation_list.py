"""tests/mutation-survivors.md read by the tools: which mutants it accepts (equivalent,
timing-only, never run by the tool), each with the one-line change it was judged on.

``.ci/mutation_report.py`` checks a run's survivors against it; under ``bash .ci/mutation``
the tests' conftest runs no test for an accepted mutant whose change is still the one
listed (mutmut then records it as having no tests): a listed equivalent survives every
run by definition, and ran every test that calls its function each time, a third of a
whole run's time. A mutant whose change differs (its function was edited, and mutmut's
numbering moved) runs as any other.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

LIST = Path(__file__).resolve().parent / "mutation-survivors.md"
ACCEPTED = ("Equivalent", "Timing-only", "Never run")
_ENTRY = re.compile(r"^- `([\w.ǁ]+__mutmut_\d+)`: `(.*)`\s*$", re.M)


def accepted_changes(text: str | None = None) -> dict[str, str]:
    """Each accepted mutant's name and the change the list shows for it."""
    text = LIST.read_text(encoding="utf-8") if text is None else text
    found: dict[str, str] = {}
    for section in text.split("\n## ")[1:]:
        if section.startswith(ACCEPTED):
            found.update(_ENTRY.findall(section))
    return found


def module_path(mutant: str) -> Path:
    """The mutated module's file, relative to the folder mutmut works in (mutants/)."""
    module = re.split(r"\.x(?:_|ǁ)", mutant, maxsplit=1)[0]
    return Path(*module.split(".")).with_suffix(".py")


def one_line_diff(mutant: str, root: Path) -> str:
    """The mutant's change as the list writes it (``- old / + new``, at most 300 characters),
    read from ``root``/mutants/, where mutmut keeps the mutated modules."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    here = Path.cwd()
    os.chdir(root)  # mutmut reads mutants/ from the folder above it
    try:
        diff = get_diff_for_mutant(mutant, path=module_path(mutant))
    finally:
        os.chdir(here)
    lines = diff.splitlines()[2:]
    return " / ".join(f"{line[0]} {line[1:].strip()}" for line in lines if line[:1] in "+-")[:300]
