"""What ``refnode serve`` does with a database it must not start on: one with a damaged
page (``PRAGMA quick_check`` finds it) and one a newer release migrated. It says so,
names the way out (``refnode restore``), and exits before it listens; the backup taken
before the damage restores to a node that serves."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from procs import ProcNode, make_proc_node

from node.base.config import load_config
from node.storage.migrations import LATEST

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def refnode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def damage_table(db: Path, table: str) -> None:
    """Overwrite the header of ``table``'s root page, as a failing disk might."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    finally:
        conn.close()
    with open(db, "r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\xa7" * 64)


def test_a_damaged_page_stops_serve_and_points_to_restore(tmp_path):
    node = make_proc_node(tmp_path, "Broker")
    archive = tmp_path / "before.tar.gz"
    node.start()
    try:
        for i in range(30):
            assert node.api("POST", "/api/v1/contacts", {"first_name": f"Sam{i}", "last_name": "Lee"})[0] == 201
        assert refnode("--config", str(node.config.config_path), "backup", str(archive)).returncode == 0
    finally:
        node.stop()
    damage_table(node.config.database_path, "contacts")

    served = refnode("--config", str(node.config.config_path), "serve")
    assert served.returncode == 1
    assert "database_damaged" in served.stderr and "quick_check" in served.stderr
    assert "refnode restore" in served.stderr and str(node.config.database_path) in served.stderr
    assert "Traceback" not in served.stderr and not (node.config.data_dir / "serving.json").exists()

    target = tmp_path / "Broker-restored"
    restored = refnode("restore", str(archive), "--data-dir", str(target))
    assert restored.returncode == 0, restored.stderr
    again = ProcNode("Broker", load_config(target / "refnode.toml", {}), node.token, tmp_path / "restored.log")
    again.start()
    try:
        status, body = again.api("GET", "/api/v1/contacts?limit=100")
        assert status == 200 and len(body["contacts"]) == 30
    finally:
        again.stop()


def test_a_database_from_a_newer_release_is_refused_clearly(tmp_path):
    node = make_proc_node(tmp_path, "Broker")
    conn = sqlite3.connect(node.config.database_path, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    for command in (["serve"], ["receipts", "verify"]):
        result = refnode("--config", str(node.config.config_path), *command)
        assert result.returncode == 1, (command, result.stderr)
        assert "schema_too_new" in result.stderr and f"schema version {LATEST + 1}" in result.stderr
        assert "newer release" in result.stderr and "Traceback" not in result.stderr
    # Untouched: an older release neither migrated nor wrote it.
    conn = sqlite3.connect(node.config.database_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST + 1
    conn.close()
