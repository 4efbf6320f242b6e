"""The ``refnode`` command, run as real processes against real served nodes."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port

from node.base.keystore import KeyStore
from node.cli.main import command_names

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FAST = {
    "REFNODE_RETRY_BASE_DELAY_S": "0.2",
    "REFNODE_RETRY_MAX_DELAY_S": "2",
    "REFNODE_OUTBOX_POLL_INTERVAL_S": "0.2",
    "REFNODE_REQUEST_TIMEOUT_S": "10",
    "REFNODE_LOG_LEVEL": "warning",
}
FINGERPRINT = re.compile(r"\b[A-Z2-7]{4}(?:-[A-Z2-7]{4}){5}\b")


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFNODE_")} | FAST | extra
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def refnode(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=cwd, env=env or cli_env(),
                          capture_output=True, text=True, timeout=60, check=False)


def ok(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = refnode(*args, cwd=cwd, env=env)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def init(tmp_path: Path, folder: str, org: str) -> tuple[int, str]:
    port = free_port()
    out = ok("--data-dir", folder, "init", "--org-name", org, "--admin-email", f"admin@{folder}.example",
             "--port", str(port), cwd=tmp_path)
    return port, FINGERPRINT.search(out).group(0)  # type: ignore[union-attr]


class Servers:
    """`refnode serve` processes started by a test; all stopped at teardown."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def start(self, folder: str, port: int) -> None:
        proc = subprocess.Popen([sys.executable, "-m", "node.cli", "--data-dir", folder, "serve"], cwd=self.cwd,
                                env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs[folder] = proc
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"serve exited {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/.well-known/refnode", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, "the node's discovery endpoint never answered"
            time.sleep(0.1)

    def stop(self, folder: str) -> tuple[int, str]:
        """SIGTERM; returns the exit code and everything the process printed."""
        proc = self.procs.pop(folder)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        return proc.returncode, out

    def close(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.communicate(timeout=10)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    running = Servers(tmp_path)
    yield running
    running.close()


def wait_json(check, *, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)
    return result


def test_init_prints_the_fingerprint_and_writes_a_private_token(tmp_path: Path) -> None:
    port = free_port()
    out = ok("--data-dir", "agency", "init", "--org-name", "Harbour Realty", "--admin-email", "ava@agency.example",
             "--port", str(port), cwd=tmp_path)
    keys = KeyStore.load(tmp_path / "agency" / "keys", None)
    assert f"FINGERPRINT:  {keys.fingerprint}" in out
    assert keys.node_id in out
    token_file = tmp_path / "agency" / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().startswith("rnt_")
    assert str(token_file) in out
    config = (tmp_path / "agency" / "refnode.toml").read_text()
    assert f"port = {port}" in config and 'org_name = "Harbour Realty"' in config

    again = refnode("--data-dir", "agency", "init", "--org-name", "X", "--admin-email", "x@x.example", cwd=tmp_path)
    assert again.returncode == 1
    assert "already holds a node" in again.stderr
    assert KeyStore.load(tmp_path / "agency" / "keys", None).node_id == keys.node_id  # untouched

    other = json.loads(ok("init", "--org-name", "Summit", "--admin-email", "s@summit.example", "--json",
                          "--data-dir", "broker", cwd=tmp_path))
    assert other["fingerprint"] == KeyStore.load(tmp_path / "broker" / "keys", None).fingerprint
    assert other["public_url"] == "http://127.0.0.1:8701"


def test_two_served_nodes_connect_refer_and_verify_receipts_offline(tmp_path: Path, servers: Servers) -> None:
    agency_port, agency_fp = init(tmp_path, "agency", "Harbour Realty")
    broker_port, broker_fp = init(tmp_path, "broker", "Summit Mortgage Brokers")
    servers.start("agency", agency_port)
    servers.start("broker", broker_port)

    invite = json.loads(ok("--data-dir", "broker", "invite", "create", "Harbour Realty", "--json", cwd=tmp_path))
    assert invite["fingerprint"] == broker_fp
    assert invite["referral_key"].startswith("rnk1_")
    out = ok("--data-dir", "agency", "connect", invite["referral_url"], invite["referral_key"], cwd=tmp_path)
    assert f"Their fingerprint: {broker_fp}" in out
    assert re.search(r"Connection con_\S+ with Summit Mortgage Brokers is active\.", out), out

    # The invitation is single use: a second connect is refused, and says why.
    again = refnode("--data-dir", "agency", "connect", invite["referral_url"], invite["referral_key"], cwd=tmp_path)
    assert again.returncode == 1 and "is refused: invitation_used: this invitation was already used" in again.stdout

    table = ok("--data-dir", "broker", "connections", "list", cwd=tmp_path)
    assert re.search(rf"Harbour Realty\s+active\s+receive\s+responder\s+{agency_fp}", table), table
    at_agency = json.loads(ok("--data-dir", "agency", "connections", "list", "--json", cwd=tmp_path))
    active = [c for c in at_agency["connections"] if c["state"] == "active"]
    assert [c["peer_fingerprint"] for c in active] == [broker_fp]
    assert json.loads(ok("--json", "--data-dir", "agency", "info", cwd=tmp_path))["fingerprint"] == agency_fp

    sent = json.loads(ok("--data-dir", "agency", "refer", "--file", str(REPO / "examples/two_orgs/referral.json"),
                         "--connection-id", active[0]["id"], "--json", cwd=tmp_path))
    local_id = sent["referral"]["local_id"]
    wait_json(lambda: json.loads(ok("--data-dir", "agency", "referrals", "show", local_id, "--json",
                                    cwd=tmp_path))["referral"]["state"] == "delivered")

    code, output = servers.stop("agency")
    assert code == 0 and "refnode: stopped" in output, output
    servers.stop("broker")

    # Offline: nothing is listening any more, and the evidence still verifies.
    down = refnode("--data-dir", "agency", "connections", "list", cwd=tmp_path)
    assert down.returncode == 1 and "unreachable" in down.stderr
    report = json.loads(ok("--data-dir", "agency", "receipts", "verify", "--json", cwd=tmp_path))
    assert report["checked"] == 3 and report["valid"] == 3 and report["invalid"] == []
    assert sorted(r["type"] for r in report["receipts"]) == [
        "connection-confirm/1.0", "connection-request/1.0", "referral-offer/1.0"]
    assert "All 3 receipt(s) verify." in ok("--data-dir", "agency", "receipts", "verify", cwd=tmp_path)

    # A receipt that was tampered with in the database fails, and the command says so.
    db = sqlite3.connect(tmp_path / "agency" / "node.db")
    with db:
        receipt = db.execute("SELECT receipt FROM outbox WHERE type LIKE 'referral-offer/%'").fetchone()[0]
        doc = json.loads(receipt)
        doc["signature"] = ("A" if doc["signature"][0] != "A" else "B") + doc["signature"][1:]
        db.execute("UPDATE outbox SET receipt = ? WHERE type LIKE 'referral-offer/%'", (json.dumps(doc).encode(),))
    db.close()
    failed = refnode("--data-dir", "agency", "receipts", "verify", cwd=tmp_path)
    assert failed.returncode == 1
    assert "1 of 3 receipt(s) FAILED." in failed.stdout
    assert re.search(r"referral-offer/1\.0 .*FAIL: bad_signature", failed.stdout), failed.stdout


def test_errors_exit_non_zero_with_the_apis_message(tmp_path: Path, servers: Servers) -> None:
    unknown = refnode("frobnicate", cwd=tmp_path)
    assert unknown.returncode == 2 and "invalid choice: 'frobnicate'" in unknown.stderr
    missing = refnode("init", "--admin-email", "a@b.example", cwd=tmp_path)
    assert missing.returncode == 2 and "--org-name" in missing.stderr
    not_init = refnode("--data-dir", "nothing", "serve", cwd=tmp_path)
    assert not_init.returncode == 1 and "run 'refnode init' first" in not_init.stderr

    port, _ = init(tmp_path, "broker", "Summit Mortgage Brokers")
    bad_status = refnode("--data-dir", "broker", "referrals", "status", "ref_x", "received", cwd=tmp_path)
    assert bad_status.returncode == 2 and "invalid choice: 'received'" in bad_status.stderr
    servers.start("broker", port)

    no_such = refnode("--data-dir", "broker", "connections", "show", "con_nope", cwd=tmp_path)
    assert no_such.returncode == 1
    assert "refnode: error: unknown_subject: no connection con_nope" in no_such.stderr

    bad_email = refnode("--data-dir", "broker", "users", "add", "not-an-email", "Bob", "--json", cwd=tmp_path)
    assert bad_email.returncode == 1
    assert "(field: email)" in bad_email.stderr
    assert json.loads(bad_email.stdout)["error"] == {
        "code": "invalid", "field": "email",
        "message": "email: must be an email address"}

    # A broker's token (from REFNODE_TOKEN) is not enough for admin commands.
    ok("--data-dir", "broker", "users", "add", "bree@broker.example", "Bree", "--role", "broker", cwd=tmp_path)
    users = json.loads(ok("--data-dir", "broker", "users", "list", "--json", cwd=tmp_path))["users"]
    bree = next(u for u in users if u["email"] == "bree@broker.example")
    token = json.loads(ok("--data-dir", "broker", "token", "create", "--user-id", bree["id"], "--json",
                          cwd=tmp_path))["token"]
    as_bree = cli_env(REFNODE_TOKEN=token)
    assert "Summit Mortgage Brokers" in ok("--data-dir", "broker", "info", cwd=tmp_path, env=as_bree)
    denied = refnode("--data-dir", "broker", "invite", "list", cwd=tmp_path, env=as_bree)
    assert denied.returncode == 1 and "forbidden: this needs an admin" in denied.stderr


def _cli_reference(readme: str) -> str | None:
    lines = readme.splitlines()
    for i, line in enumerate(lines):
        heading = re.match(r"^(#+)\s+(.*)$", line)
        if heading and "cli reference" in heading.group(2).lower():
            level = len(heading.group(1))
            end = next((j for j in range(i + 1, len(lines))
                        if (h := re.match(r"^(#+)\s", lines[j])) and len(h.group(1)) <= level), len(lines))
            return "\n".join(lines[i:end])
    return None


def test_every_command_is_in_the_cli_reference() -> None:
    """docs/cli.md lists every command, and README.md's CLI reference section points to it."""
    commands = command_names()
    assert "receipts verify" in commands and "init" in commands  # the walk finds nested and top-level ones
    section = _cli_reference((REPO / "README.md").read_text(encoding="utf-8"))
    assert section is not None and "docs/cli.md" in section, "README.md's CLI reference must point to docs/cli.md"
    text = re.sub(r"\s+", " ", (REPO / "docs" / "cli.md").read_text(encoding="utf-8"))
    missing = [c for c in commands if f"refnode {c}" not in text]
    assert not missing, f"docs/cli.md does not mention: {', '.join(f'refnode {c}' for c in missing)}"
