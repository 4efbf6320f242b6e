"""The two-organisation example runs end to end: two real nodes, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_two_orgs_example_runs_and_shows_the_receipt_and_the_status_update(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFNODE_")}
    done = subprocess.run([sys.executable, str(REPO / "examples/two_orgs/run.py"), "--data-dir", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    transcript = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{transcript}\n{done.stderr}"

    assert "$ refnode --data-dir summit invite create 'Harbour Realty'" in transcript
    assert "with Summit Mortgage Brokers is active." in transcript
    assert "OK: Summit is" in transcript  # both fingerprints compared
    assert "referral-offer/1.0" in transcript and "All 3 receipt(s) verify." in transcript
    assert "OK: receipt verified." in transcript
    assert "2. " in transcript and "in-progress  (valuation ordered)" in transcript
    assert "OK: status update arrived." in transcript
    assert transcript.count("node stopped cleanly (exit 0)") == 2
    # Both nodes kept their own data; the servers are gone (their logs end with the stop).
    for folder in ("harbour", "summit"):
        assert (tmp_path / folder / "node.db").is_file()
        assert (tmp_path / f"{folder}.log").read_text().rstrip().endswith("refnode: stopped")
