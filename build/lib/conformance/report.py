"""Results, one line per check, for people (default) and as JUnit XML for CI."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

Outcome = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class Result:
    name: str
    #: Where docs/protocol.md states the rule, e.g. "8.5 step 7a".
    section: str
    outcome: Outcome
    detail: str = ""
    seconds: float = 0.0


def line(result: Result) -> str:
    mark = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}[result.outcome]
    text = f"{mark}  {result.name}  [§{result.section}]"
    return f"{text}: {result.detail}" if result.detail and result.outcome != "pass" else text


def summary(results: list[Result], seconds: float) -> str:
    counts = {o: sum(r.outcome == o for r in results) for o in ("pass", "fail", "skip")}
    return (f"{len(results)} checks: {counts['pass']} passed, {counts['fail']} failed, "
            f"{counts['skip']} skipped in {seconds:.1f} s")


def print_results(results: list[Result], seconds: float, out: TextIO) -> None:
    for result in results:
        print(line(result), file=out)
    print(summary(results, seconds), file=out)


def write_junit(results: list[Result], seconds: float, path: Path, *, target: str) -> None:
    """One <testsuite> named after the target, one <testcase> per check."""
    suite = ET.Element("testsuite", {
        "name": f"refnode conformance {target}",
        "tests": str(len(results)),
        "failures": str(sum(r.outcome == "fail" for r in results)),
        "skipped": str(sum(r.outcome == "skip" for r in results)),
        "errors": "0",
        "time": f"{seconds:.3f}",
    })
    for result in results:
        case = ET.SubElement(suite, "testcase", {
            "classname": "refnode.conformance.section_" + re.sub(r"\W+", "_", result.section.split(",")[0]),
            "name": f"{result.name} [§{result.section}]",
            "time": f"{result.seconds:.3f}",
        })
        if result.outcome == "fail":
            ET.SubElement(case, "failure", {"message": result.detail}).text = result.detail
        elif result.outcome == "skip":
            ET.SubElement(case, "skipped", {"message": result.detail})
    root = ET.Element("testsuites")
    root.append(suite)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
