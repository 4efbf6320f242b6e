"""What a new user met (issue 11, "found by a new user"), through the ``refnode`` command as
real processes: README.md's commands followed literally on two ports, the messages for a
node that does not answer or is not ours, requests and keys that are refused, referring
with names and the referring agent, and a reader that stops reading. The API side is in
test_first_use_api.py."""

from __future__ import annotations

import http.server
import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from test_cli import REPO, cli_env

pytestmark = pytest.mark.slow


def run(cwd: Path, command: str, *, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A command line as a person types it, with ``refnode`` being this checkout's CLI."""
    words = shlex.split(command)
    assert words[0] == "refnode", command
    return subprocess.run([sys.executable, "-m", "node.cli", *words[1:]], cwd=cwd, env=cli_env(**(env or {})),
                          capture_output=True, text=True, timeout=timeout, check=False)


def ok(cwd: Path, command: str, **kwargs: Any) -> str:
    done = run(cwd, command, **kwargs)
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    return done.stdout


class Serving:
    """``refnode serve`` processes, each in its own working folder; stopped at teardown."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, cwd: Path, command: str, port: int, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        words = shlex.split(command)
        proc = subprocess.Popen([sys.executable, "-m", "node.cli", *words[1:]], cwd=cwd, env=cli_env(**(env or {})),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"{command} exited: {proc.stdout.read() if proc.stdout else ''}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/.well-known/refnode", timeout=1) as resp:
                    if resp.status == 200:
                        return proc
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, f"nothing answers on port {port} after: {command}"
            time.sleep(0.1)

    def stop(self, proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
        self.procs.remove(proc)

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.communicate(timeout=10)


@pytest.fixture
def serving() -> Iterator[Serving]:
    running = Serving()
    yield running
    running.close()


def readme_commands(heading: str) -> list[str]:
    """The command lines of the sh blocks in README.md's section under ``heading`` (its
    subsections included), comments left out and ``a && b`` as two lines."""
    level = len(heading) - len(heading.lstrip("#"))
    inside = in_code = in_sh = False
    lines: list[str] = []
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code, in_sh = not in_code, not in_code and line.strip() == "```sh"
            continue
        if not in_code and (m := re.match(r"^(#+) ", line)):
            if line.strip() == heading:
                inside = True
            elif inside and len(m.group(1)) <= level:
                break
            continue
        if inside and in_sh and not line.lstrip().startswith("#"):
            lines.extend(part.strip() for part in line.split("&&") if part.strip())
    assert lines, f"README.md has no commands under {heading!r}"
    return lines


# --- item 10: the README, followed literally, on two ports ------------------------------


def test_the_readme_commands_followed_literally_work_on_two_ports(tmp_path: Path, serving: Serving) -> None:
    running = readme_commands("## Running a node")
    connecting = readme_commands("### Connecting two organisations")
    inits = [c for c in running if c.startswith("refnode init")]
    serves = [c for c in running if c.startswith("refnode serve")]
    assert len(inits) == 2 and serves[0] == "refnode serve" and re.fullmatch(r"refnode serve --port \d+", serves[1])
    assert running[running.index(inits[1]) - 2:running.index(inits[1])] == ["mkdir harbour", "cd harbour"]
    invite_cmd, connect_cmd, list_cmd = connecting
    assert invite_cmd.startswith("refnode invite create") and connect_cmd.startswith("refnode connect ")
    assert list_cmd == "refnode connections list"

    # Summit, in its folder, as the README says; served on another port than the default
    # through REFNODE_PORT, the README's advice (8701 may be taken on a shared machine).
    summit, harbour = tmp_path / "summit", tmp_path / "harbour"
    summit.mkdir()
    harbour.mkdir()  # 'mkdir harbour && cd harbour'
    ok(summit, inits[0])
    summit_port, harbour_port = free_port(), free_port()
    serving.start(summit, serves[0], summit_port, env={"REFNODE_PORT": str(summit_port)})
    ok(harbour, inits[1])
    serving.start(harbour, serves[1].replace(serves[1].split()[-1], str(harbour_port)), harbour_port)

    # The other commands find each node with no port given.
    out = ok(summit, invite_cmd)
    url = re.search(r"Referral URL:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    key = re.search(r"Referral key:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    assert url.startswith(f"http://127.0.0.1:{summit_port}/refnode/v1/invitations/inv_"), url
    # The connect line with what the broker's admin sent, pasted where the README has it.
    example_url, example_key = shlex.split(connect_cmd)[2:4]
    connected = ok(harbour, connect_cmd.replace(f"'{example_url}'", shlex.quote(url)).replace(example_key, key))
    assert re.search(r"Connection con_\S+ with Summit Mortgage Brokers is active\.", connected), connected
    assert re.search(r"Harbour Realty\s+active\s+receive\s+responder", ok(summit, list_cmd))
    assert re.search(r"Summit Mortgage Brokers\s+active\s+send\s+requester", ok(harbour, list_cmd))
    info = json.loads(ok(harbour, "refnode info --json"))
    assert info["base_url"] == f"http://127.0.0.1:{harbour_port}"  # the public URL followed the port


# --- item 10: nothing answers, something else answers, another node answers -------------


class _NotANode(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        body = b"<html>hello</html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_an_unreachable_node_a_stranger_and_another_node_are_told_apart(tmp_path: Path, serving: Serving) -> None:
    for name in ("summit", "harbour"):
        (tmp_path / name).mkdir()
        ok(tmp_path / name, f"refnode init --org-name {name.title()} --admin-email admin@{name}.example")
    summit, harbour = tmp_path / "summit", tmp_path / "harbour"

    nothing = run(summit, "refnode connections list", env={"REFNODE_PORT": str(free_port())})
    assert nothing.returncode == 1
    assert re.search(r"unreachable: no node answers at http://127\.0\.0\.1:\d+ \(connection refused\); is "
                     r"'refnode serve' running with this data folder \(.*summit/refnode-data\)\?", nothing.stderr), (
        nothing.stderr)

    stranger = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotANode)
    threading.Thread(target=stranger.serve_forever, daemon=True).start()
    try:
        other = run(summit, "refnode info", env={"REFNODE_PORT": str(stranger.server_address[1])})
    finally:
        stranger.shutdown()
    assert other.returncode == 1
    assert "not_a_node: something answers at" in other.stderr and "HTTP 404, text/html" in other.stderr

    port = free_port()
    proc = serving.start(summit, "refnode serve", port, env={"REFNODE_PORT": str(port)})
    assert json.loads((summit / "refnode-data" / "serving.json").read_text())["url"] == f"http://127.0.0.1:{port}"
    wrong = run(harbour, "refnode info", env={"REFNODE_PORT": str(port)})
    assert wrong.returncode == 1
    assert "unauthenticated: 'Summit' (fingerprint" in wrong.stderr
    assert "does not accept the admin token from" in wrong.stderr and "harbour/refnode-data" in wrong.stderr
    serving.stop(proc)
    assert not (summit / "refnode-data" / "serving.json").exists()


# --- items 13 and 17: requests and keys that are refused --------------------------------


def test_refused_requests_and_keys_are_reported_as_refused(tmp_path: Path, serving: Serving) -> None:
    summit, harbour = tmp_path / "summit", tmp_path / "harbour"
    ports = {}
    for folder, org in ((summit, "Summit"), (harbour, "Harbour")):
        folder.mkdir()
        ports[folder] = free_port()
        ok(folder, f"refnode init --org-name {org} --admin-email admin@{org.lower()}.example --port {ports[folder]}")
        serving.start(folder, "refnode serve", ports[folder])
    summit_url = f"http://127.0.0.1:{ports[summit]}"

    # A request to nobody there: refused, said so, exit 1; final, explained, not retried.
    nobody = run(harbour, f"refnode request {summit_url} nobody@summit.example")
    assert nobody.returncode == 1, nobody.stdout
    assert "Summit refused the request." in nobody.stdout and "must accept" not in nobody.stdout
    assert "is refused: unknown_user: no active user there has the email" in nobody.stdout
    refused_id = re.search(r"Connection (con_\S+)", nobody.stdout).group(1)  # type: ignore[union-attr]
    shown = ok(harbour, f"refnode connections show {refused_id}")
    assert re.search(r"state:\s+refused", shown) and re.search(r"closing_note:\s+unknown_user: ", shown), shown
    seq = json.loads(ok(harbour, "refnode outbox list --state failed --json"))["outbox"][0]["seq"]
    retry = run(harbour, f"refnode outbox retry {seq}")
    assert retry.returncode == 1 and "refused_by_peer:" in retry.stderr

    # A request to a real user: their node took it; they accept it there.
    asked = run(harbour, f"refnode request {summit_url} admin@summit.example --json")
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["delivery"]["state"] == "delivered" and answer["connection"]["state"] == "requested"
    told = ok(harbour, f"refnode request {summit_url} admin@summit.example")
    assert "Their node took the request: admin@summit.example must accept it there." in told

    # A well-formed but wrong key: connect says why and exits 1; the row is final, with why.
    invite = json.loads(ok(summit, "refnode invite create Harbour --json"))
    wrong = run(harbour, f"refnode connect {shlex.quote(invite['referral_url'])} rnk1_{'A' * 43}")
    assert wrong.returncode == 1
    assert "is refused: invitation_invalid: their node does not recognise this referral key" in wrong.stdout
    listed = ok(harbour, "refnode connections list")
    assert re.search(r"refused\s+both\s+requester\s+\S+\s+invitation_invalid: their node does not", listed), listed
    # The right key still works, and a URL typed wrong says what one looks like.
    right = ok(harbour, f"refnode connect {shlex.quote(invite['referral_url'])} {invite['referral_key']}")
    assert "is active." in right
    cut = run(harbour, f"refnode connect {shlex.quote(invite['referral_url'][:-4])} {invite['referral_key']}")
    assert cut.returncode == 1 and "a referral URL looks like https://" in cut.stderr and "pattern" not in cut.stderr


# --- items 16 and 17: referring with names, the agent, and on purpose twice --------------


def test_referring_takes_names_and_wants_the_agent_and_again_on_purpose(tmp_path: Path, serving: Serving) -> None:
    summit, harbour = tmp_path / "summit", tmp_path / "harbour"
    ports = {}
    for folder, org in ((summit, "Summit Mortgage Brokers"), (harbour, "Harbour Realty")):
        folder.mkdir()
        ports[folder] = free_port()
        ok(folder, f"refnode init --org-name '{org}' --admin-email admin@{folder.name}.example --port {ports[folder]}")
        serving.start(folder, "refnode serve", ports[folder])
    invite = json.loads(ok(summit, "refnode invite create 'Harbour Realty' --json"))
    ok(harbour, f"refnode connect {shlex.quote(invite['referral_url'])} {invite['referral_key']}")

    ok(harbour, "refnode users add ava@harbour.example 'Ava Agent'")
    ok(harbour, "refnode workflows create 'Home Loans' --owner-email admin@harbour.example --stages New,Offer,Sold")
    ok(harbour, "refnode workflows create 'Rentals' --owner-email admin@harbour.example --stages New,Leased")
    contact = json.loads(ok(harbour, "refnode contacts add --first-name Jo --last-name Citizen --json"))["contact"]
    # Names where ids are taken: a workflow, a stage in it, and (below) a connection and a user.
    deal = json.loads(ok(harbour, f"refnode deals add --title 'Jo buys' --workflow-id 'home loans' --stage-id Offer "
                                  f"--contact-id {contact['id']} --json"))["deal"]
    workflows = json.loads(ok(harbour, "refnode workflows list --json"))["workflows"]
    home = next(w for w in workflows if w["name"] == "Home Loans")
    assert (deal["workflow_id"], deal["stage_id"]) == (home["id"], home["stages"][1]["id"])
    ambiguous = run(harbour, "refnode deals list --stage-id New")
    assert ambiguous.returncode == 1 and "ambiguous: 2 stages are called 'New'" in ambiguous.stderr
    assert home["stages"][0]["id"] in ambiguous.stderr and "--workflow-id" in ambiguous.stderr
    unknown = run(harbour, "refnode deals list --workflow-id 'Home Lones'")
    assert unknown.returncode == 1 and "no workflow is called 'Home Lones'" in unknown.stderr
    listed = json.loads(ok(harbour, "refnode deals list --workflow-id 'Home Loans' --stage-id offer --json"))
    assert [d["id"] for d in listed["deals"]] == [deal["id"]]
    assert "Moved deal" in ok(harbour, f"refnode deals move {deal['id']} Sold")

    (harbour / "disclosure.txt").write_text("We share your details with Summit.\n")
    refer = (f"refnode deals refer {deal['id']} --connection-id 'Summit Mortgage Brokers' --consent-contact-id "
             f"{contact['id']} --consent-method verbal --disclosure-version v1 --disclosure-file disclosure.txt")
    no_agent = run(harbour, refer)
    assert no_agent.returncode == 1
    assert "choose the referring agent, who gets the commission credit: --agent EMAIL" in no_agent.stderr
    sent = json.loads(ok(harbour, refer + " --agent ava@harbour.example --json"))["referral"]
    assert sent["offer"]["referring_agent"] == {"name": "Ava Agent", "email": "ava@harbour.example"}
    twice = run(harbour, refer + " --agent ava@harbour.example")
    assert twice.returncode == 1
    assert f"already_referred: deal 'Jo buys' is already referred to Summit Mortgage Brokers: referral " \
           f"{sent['local_id']}" in twice.stderr and "add --again" in twice.stderr
    again = json.loads(ok(harbour, refer + " --agent ava@harbour.example --again --json"))["referral"]
    assert again["local_id"] != sent["local_id"]

    # The referral note shows once per referral on the deal.
    shown = ok(harbour, f"refnode deals show {deal['id']}")
    assert shown.count("Referred to Summit Mortgage Brokers") == 2, shown

    # 'refnode workflows list | head -1' with a reader gone before anything is written.
    proc = subprocess.Popen([sys.executable, "-m", "node.cli", "workflows", "list"], cwd=harbour, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=30)
    assert (proc.returncode, err) == (141, "")


# --- item 17: version, a bad admin email, a reader that stops ----------------------------


def test_version_a_bad_admin_email_and_a_closed_pipe(tmp_path: Path) -> None:
    import importlib.metadata

    version = ok(tmp_path, "refnode --version")
    assert version.strip() == f"refnode {importlib.metadata.version('referral-node')}"

    bad = run(tmp_path, "refnode init --org-name Summit --admin-email notanemail")
    assert bad.returncode == 2 and "'notanemail' is not an email address" in bad.stderr
    assert not (tmp_path / "refnode-data").exists()  # nothing half-made

    ok(tmp_path, "refnode init --org-name Summit --admin-email admin@summit.example")
    # 'refnode receipts verify | head -0': the reader is gone before anything is written.
    proc = subprocess.Popen([sys.executable, "-m", "node.cli", "receipts", "verify"], cwd=tmp_path, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=30)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 141
