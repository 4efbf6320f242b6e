"""``refnode conformance`` against a freshly started node of ours (a real ``refnode
serve`` process, real HTTP, the CLI run as a process too): every check passes. Then
against the same node with one inbox check turned off by the test-only switch: the
suite fails, and names exactly the checks that the missing rule breaks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from procs import ProcNode, make_proc_node

from conformance import session
from conformance.target import STATUS
from node.base.errors import HTTP_STATUS
from node.cli import conformance as cli_conformance
from node.federation.runtime import inbox_breaks

REPO = Path(__file__).resolve().parents[2]
HOOK = REPO / "examples" / "conformance" / "refnode_hook.py"


def conformance(node: ProcNode, tmp_path: Path, *extra: str) -> tuple[int, list[str], ET.Element, float]:
    """Make an invitation (direction both) and an expired one at ``node``, and run the
    suite against it with our hook; its exit status, its lines, its JUnit XML, seconds."""
    status, invitation = node.api("POST", "/api/v1/invitations", {"name": "Conformance", "direction": "both"})
    assert status == 201, invitation
    status, old = node.api("POST", "/api/v1/invitations", {"name": "Old", "direction": "both", "ttl_s": 1})
    assert status == 201, old
    status, one_way = node.api("POST", "/api/v1/invitations", {"name": "One way", "direction": "send"})
    assert status == 201, one_way
    time.sleep(1.2)  # the second one expires
    junit = tmp_path / "conformance.xml"
    env = dict(os.environ, REFNODE_HOOK_URL=node.url, REFNODE_HOOK_TOKEN=node.token)
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "node.cli", "conformance", invitation["referral_url"],
         "--key", invitation["referral_key"], "--expired-url", old["referral_url"],
         "--expired-key", old["referral_key"], "--one-way-url", one_way["referral_url"],
         "--one-way-key", one_way["referral_key"], "--hook", str(HOOK), "--junit", str(junit), "--no-input",
         "--wait", "30", *extra],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    seconds = time.monotonic() - started
    assert invitation["referral_key"] not in run.stdout + run.stderr  # the secret is never shown
    return run.returncode, run.stdout.splitlines(), ET.parse(junit).getroot(), seconds


def failed(lines: list[str]) -> set[str]:
    return {line.removeprefix("FAIL  ").split("  [§")[0] for line in lines if line.startswith("FAIL")}


pytestmark = pytest.mark.slow


def test_every_check_passes_against_our_node(tmp_path: Path) -> None:
    node = make_proc_node(tmp_path, "Target")
    node.start(timeout_s=60.0)  # a loaded machine starts it slowly
    try:
        code, lines, junit, seconds = conformance(node, tmp_path)
    finally:
        node.stop()
    checks = [line for line in lines if line[:4] in ("PASS", "FAIL", "SKIP")]
    assert code == 0, "\n".join(lines)
    assert len(checks) >= 60 and all(line.startswith("PASS") for line in checks), "\n".join(lines)
    assert lines[-1].startswith(f"{len(checks)} checks: {len(checks)} passed, 0 failed, 0 skipped")
    suite = junit.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (str(len(checks)), "0", "0")
    names = [case.get("name") for case in suite.iter("testcase")]
    for wanted in ("wrong recipient [§8.5 step 7a]", "expired invitation is refused [§11.4, 11.5]",
                   "referral from the target opens and keeps the sharing rules [§13.6, 14.5]",
                   "a direction with nothing in common is refused, and the invitation stays open [§11.4, 12.3]",
                   "check order: a declared length over the limit before a wrong content type [§8.5 steps 1a, 1b]",
                   "strict JSON in a message: nested 32 deep is accepted [§3.2, 8.5 step 13a]",
                   "key rotation by the target: announced, and its new receipts verify [§4.9, 9.4]"):
        assert wanted in names
    print(f"conformance against our node: {len(checks)} checks in {seconds:.1f} s (CLI process, wall clock)")


@pytest.mark.parametrize(("broken", "caught"), [
    ("recipient", {"wrong recipient", "introduction to another node"}),
    ("replay", {"replay: the same bytes get the original receipt", "replay: the same id with other bytes is refused"}),
    ("expiry", {"expired"}),
])
def test_the_suite_catches_a_node_without_a_check(tmp_path: Path, broken: str, caught: set[str]) -> None:
    node = make_proc_node(tmp_path, "Broken")
    node.env.update(REFNODE_TEST_MODE="1", REFNODE_TEST_BREAK=broken)
    node.start(timeout_s=60.0)  # a loaded machine starts it slowly
    try:
        code, lines, junit, _ = conformance(node, tmp_path)
    finally:
        node.stop()
    assert "TEST MODE: inbox checks turned off" in node.log_path.read_text()
    assert code == 1
    assert failed(lines) == caught, "\n".join(lines)
    suite = junit.find("testsuite")
    assert suite is not None and suite.get("failures") == str(len(caught))
    failures = {case.get("name", "").split(" [§")[0] for case in suite.iter("testcase") if case.find("failure") is not None}
    assert failures == caught


def test_by_request_every_check_passes_but_the_invitations(tmp_path: Path) -> None:
    """``--request EMAIL``: the hook accepts the request as the target's admin would."""
    node = make_proc_node(tmp_path, "Target")
    node.start(timeout_s=60.0)
    try:
        env = dict(os.environ, REFNODE_HOOK_URL=node.url, REFNODE_HOOK_TOKEN=node.token)
        run = subprocess.run(
            [sys.executable, "-m", "node.cli", "conformance", node.url, "--request", "admin@target.example",
             "--hook", str(HOOK), "--no-input", "--wait", "30"],
            capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    finally:
        node.stop()
    lines = run.stdout.splitlines()
    skipped = {line.split("  [§")[0].removeprefix("SKIP  ") for line in lines if line.startswith("SKIP")}
    assert run.returncode == 0 and not failed(lines), "\n".join(lines)
    assert skipped == {"invitation with a wrong key is refused", "expired invitation is refused",
                       "reused invitation is refused"}  # no one-way check: it needs an invitation
    assert any(line.startswith("PASS  handshake by request") for line in lines)
    assert any(line.startswith("PASS  request to an unknown user is refused") for line in lines)


def test_a_node_that_is_not_the_one_pinned_fails_discovery_and_nothing_else_runs(tmp_path: Path) -> None:
    node = make_proc_node(tmp_path, "Target")
    node.start(timeout_s=60.0)
    try:
        _, invitation = node.api("POST", "/api/v1/invitations", {"name": "Conformance", "direction": "both"})
        url = invitation["referral_url"].split("?node=")[0] + "?node=" + "A" * 43  # another node id
        run = subprocess.run([sys.executable, "-m", "node.cli", "conformance", url, "--key",
                              invitation["referral_key"], "--no-input"],
                             capture_output=True, text=True, cwd=REPO, timeout=120)
    finally:
        node.stop()
    checks = [line for line in run.stdout.splitlines() if line[:4] in ("PASS", "FAIL", "SKIP")]
    assert run.returncode == 1
    assert checks[0].startswith("FAIL  discovery document verifies") and "fingerprint_mismatch" in checks[0]
    assert len(checks) == 2 and checks[1].startswith("SKIP  every envelope from the target"), checks


def test_the_break_switch_needs_the_test_flag() -> None:
    assert inbox_breaks({"REFNODE_TEST_BREAK": "replay,expiry"}) == frozenset()
    assert inbox_breaks({"REFNODE_TEST_MODE": "1", "REFNODE_TEST_BREAK": "replay,expiry,signature"}) == {"replay", "expiry"}
    assert inbox_breaks(dict(os.environ)) == frozenset()  # nothing in the test run's own environment


def test_the_key_variable_is_one_name() -> None:
    assert cli_conformance.KEY_ENV == session.KEY_ENV


def test_the_suites_status_table_is_the_nodes() -> None:
    """The suite reads statuses from the spec's table; ours maps them in node.base.errors."""
    assert STATUS == {code.value: status for code, status in HTTP_STATUS.items()}
