"""The figures of the last mutation run (``bash .ci/mutation``), read from mutmut's own
records in mutants/, and its survivors checked against the committed list.

    python3 .ci/mutation_report.py            # figures, and survivors not in the list
    python3 .ci/mutation_report.py --diffs    # also each unlisted survivor's change

Areas: ``protocol`` (protocol/ whole) and ``guards`` (the node's guard functions that
.ci/mutation names). A survivor is *accepted* when tests/mutation-survivors.md lists it as
equivalent, timing-only or never run (its sections of those names say why), and *named*
when the file names it at all (not yet killed, killed since the run). A mutant mypy refuses
(``type_check_command``) is caught without a test: CI type-checks the same files. The kill
rate is taken over the non-equivalent mutants: caught (killed, timed out or refused by the
type checker) / (that, plus the survivors not accepted). An accepted mutant whose change is
still the one listed runs no test (tests/conftest.py, tests/mutation_list.py): mutmut records
it as having no tests, and it is counted here as the survivor it is, in a column of its own.
Exit status 1 when a survivor is not named.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from mutation_list import LIST, accepted_changes, one_line_diff  # noqa: E402

STATUS = {1: "killed", 3: "killed", 0: "survived", 33: "no tests", 5: "no tests", 36: "timeout", 24: "timeout",
          -24: "timeout", 152: "timeout", 255: "timeout", 37: "type check", None: "not run"}


def run_names() -> list[str]:
    """The name patterns a whole run mutates, as .ci/mutation lists them."""
    script = (ROOT / ".ci/mutation").read_text()
    guards = script[script.index("GUARDS=(") : script.index(")", script.index("GUARDS=("))]
    return ["protocol.*", *re.findall(r"'([^']+)'", guards)]


def results() -> dict[str, tuple[str, float]]:
    """Every mutant of the run: its status and how long its tests took (s)."""
    import fnmatch

    names = run_names()
    found: dict[str, tuple[str, float]] = {}
    for meta in sorted((ROOT / "mutants").rglob("*.meta")):
        data = json.loads(meta.read_text())
        for name, code in data["exit_code_by_key"].items():
            if any(fnmatch.fnmatch(name, pattern) for pattern in names):
                found[name] = (STATUS.get(code, f"exit {code}"), data.get("durations_by_key", {}).get(name, 0.0))
    return found


def listed() -> tuple[set[str], set[str]]:
    """The survivors the list names: those accepted (equivalent, timing-only, never run by
    the tool) and every one it names, the not yet killed included."""
    text = LIST.read_text(encoding="utf-8")
    return set(accepted_changes(text)), set(re.findall(r"`([\w.ǁ]+__mutmut_\d+)`", text))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diffs", action="store_true", help="print each unlisted survivor's change")
    args = parser.parse_args()
    found = results()
    if not found:
        print("no results in mutants/: run bash .ci/mutation first")
        return 1
    accepted, named = listed()
    print("| area | mutants | type check | ran | killed | timed out | survived | of which accepted | "
          "of those, listed and not run again | no tests | not run | caught, of the non-equivalent |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    unlisted: list[str] = []
    for area in ("protocol", "guards"):
        mine = {n: s for n, s in found.items() if (n.startswith("protocol.")) == (area == "protocol")}
        count = Counter(status for status, _ in mine.values())
        # an accepted mutant whose change is still the one listed runs no test (tests/conftest.py):
        # mutmut records "no tests"; it counts as the survivor it was
        skipped = [n for n, (status, _) in mine.items() if status == "no tests" and n in accepted]
        count["survived"] += len(skipped)
        count["no tests"] -= len(skipped)
        survivors = [n for n, (status, _) in mine.items() if status == "survived"] + skipped
        known = sum(1 for n in survivors if n in accepted)
        unlisted += [n for n in survivors if n not in named]
        ran = count["killed"] + count["timeout"] + count["survived"] - len(skipped)
        caught = count["killed"] + count["timeout"] + count["type check"]
        rate = caught / (caught + count["survived"] - known) if caught + count["survived"] - known else 1.0
        print(f"| {area} | {len(mine)} | {count['type check']} | {ran} | {count['killed']} | {count['timeout']} | {count['survived']} | "
              f"{known} | {len(skipped)} | {count['no tests']} | {count['not run']} | {rate:.1%} |")
    seconds = sum(d for _, d in found.values())
    print(f"\nthe mutants' tests ran {seconds / 60:.0f} min in all (wall time of each mutant, added up)")
    if unlisted:
        print(f"\n{len(unlisted)} survivors are not in tests/mutation-survivors.md:")
        for name in sorted(unlisted):
            print(f"- `{name}`" + (f": `{one_line_diff(name, ROOT)}`" if args.diffs else ""))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
