"""Two organisations, one referral: refnode end to end, with the real command.

    python examples/two_orgs/run.py [--data-dir DIR] [--keep-serving]

An estate agency (Harbour Realty) and a mortgage broker (Summit Mortgage Brokers) each
get their own node: two data folders, two `refnode serve` processes on two free loopback
ports. The script then does what their admins would type: invite, connect, compare
fingerprints, refer a client, check the signed receipt, report progress back. It prints
each command with its output, and exits 0 only if every step did what it should.

With ``--keep-serving`` both nodes go on serving afterwards, and the script prints each
organisation's console address and its admin's one-time link to choose a password and
sign in, until Ctrl-C (or SIGTERM) stops them. The two consoles are on two host names
(127.0.0.1 and localhost): a browser keeps cookies per host, not per port, so one browser
can be signed in to both at once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

#: Demo settings: retry and poll quickly so the run takes seconds. Production keeps the defaults.
DEMO_ENV = {
    "REFNODE_RETRY_BASE_DELAY_S": "0.2",
    "REFNODE_RETRY_MAX_DELAY_S": "2",
    "REFNODE_OUTBOX_POLL_INTERVAL_S": "0.2",
    "REFNODE_REQUEST_TIMEOUT_S": "10",
}
COMMAND_TIMEOUT_S = 60.0


@dataclass
class Org:
    name: str
    folder: str
    admin_email: str
    admin_name: str
    kind: str
    port: int = 0
    #: The host name in the node's public URL (it listens on 127.0.0.1 either way).
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    #: The admin's one-time link to choose a console password, as ``init`` printed it.
    password_link: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class Failure(Exception):
    """A step did not do what it should; the message says what."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.step_no = 0
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("REFNODE_")} | DEMO_ENV
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        self.env["PYTHONIOENCODING"] = "utf-8"

    # -- transcript --------------------------------------------------------------------

    def step(self, text: str) -> None:
        self.step_no += 1
        print(f"\n{self.step_no}. {text}", flush=True)

    def say(self, text: str) -> None:
        print(f"   {text}", flush=True)

    # -- running refnode -----------------------------------------------------------------

    def refnode(self, org: Org, *args: str, show: bool = True, check: bool = True) -> str:
        """Run `refnode --data-dir <org> ARGS`; print it and its output when ``show``."""
        shown = ["refnode", "--data-dir", org.folder, *args]
        if show:
            print(f"   $ {shlex.join(shown)}", flush=True)
        try:
            done = subprocess.run([sys.executable, "-m", "node.cli", *shown[1:]], cwd=self.base, env=self.env,
                                  capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise Failure(f"'{shlex.join(shown)}' did not finish in {COMMAND_TIMEOUT_S:g} s") from None
        if show:
            for line in done.stdout.rstrip("\n").splitlines():
                print(f"     {line}")
        if check and done.returncode != 0:
            raise Failure(f"'{shlex.join(shown)}' exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def refnode_json(self, org: Org, *args: str) -> Any:
        return json.loads(self.refnode(org, *args, "--json", show=False))

    def wait_until(self, what: str, check: Any, timeout_s: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise Failure(f"timed out after {timeout_s:g} s waiting for {what}")
            time.sleep(0.2)

    # -- the servers ---------------------------------------------------------------------

    def serve(self, org: Org) -> None:
        print(f"   $ refnode --data-dir {org.folder} serve &      # logs: {org.folder}.log", flush=True)
        log = open(self.base / f"{org.folder}.log", "wb")  # the child keeps its own handle
        org.process = subprocess.Popen([sys.executable, "-m", "node.cli", "--data-dir", org.folder, "serve"],
                                       cwd=self.base, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def wait_for_discovery(self, org: Org) -> None:
        def answers() -> bool:
            assert org.process is not None
            if org.process.poll() is not None:
                raise Failure(f"{org.name}'s node exited with {org.process.returncode}:\n{self.log_tail(org)}")
            try:
                with urllib.request.urlopen(org.url + "/.well-known/refnode", timeout=1) as resp:  # noqa: S310
                    return bool(resp.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        self.wait_until(f"{org.name}'s discovery endpoint", answers, timeout_s=30)
        self.say(f"{org.name} answers at {org.url}/.well-known/refnode")

    def stop(self, org: Org) -> int | None:
        """SIGTERM, then wait; kill if it does not stop. Returns the exit code."""
        process, org.process = org.process, None
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None

    def log_tail(self, org: Org, lines: int = 20) -> str:
        path = self.base / f"{org.folder}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def field(output: str, label: str) -> str:
    """The value after ``label:`` in a command's human output."""
    for line in output.splitlines():
        head, sep, value = line.strip().partition(":")
        if sep and head.strip() == label:
            return value.strip()
    raise Failure(f"no {label!r} in the output:\n{output}")


def password_link(output: str) -> str:
    """The one-time set-password link ``refnode init`` printed."""
    found = re.search(r"https?://\S+/set-password/\S+", output)
    if found is None:
        raise Failure(f"no set-password link in the output:\n{output}")
    return found.group(0)


def second_referral() -> dict[str, Any]:
    """Another client of Harbour's, for the console to show a referral waiting at Summit."""
    body = json.loads((HERE / "referral.json").read_text())
    body["deal"].update(title="Refinance of 3 Jetty Road, Glenelg", deal_type="refinance", amount="512000.00",
                        summary="Fixed rate ends next month; wants to compare offers before it reverts.")
    body["contacts"][0].update(ref="clt_0057", first_name="Tom", last_name="Walsh", email="tom.walsh@example.com",
                               phone="+61 400 555 019")
    body["consent"]["contact_refs"] = ["clt_0057"]
    body["message"] = "Tom is free on weekday mornings."
    return body


def run(demo: Demo, agency: Org, broker: Org, *, keep_serving: bool = False) -> None:
    shutil.copy(HERE / "referral.json", demo.base / "referral.json")

    for org in (agency, broker):
        demo.step(f"{org.name} ({org.kind}) creates its node: keys, database and a first admin.")
        url = ["--public-url", org.url] if org.host != "127.0.0.1" else []
        done = demo.refnode(org, "init", "--org-name", org.name, "--admin-email", org.admin_email,
                            "--admin-name", org.admin_name, "--port", str(org.port), *url)
        org.password_link = password_link(done)

    demo.step("Both organisations start their node; each is a separate process with its own database.")
    for org in (agency, broker):
        demo.serve(org)
    for org in (agency, broker):
        demo.wait_for_discovery(org)

    demo.step("Summit's admin invites Harbour Realty; the URL and key go to Harbour's admin.")
    invite = demo.refnode(broker, "invite", "create", agency.name, "--direction", "receive")
    url, key = field(invite, "Referral URL"), field(invite, "Referral key")
    broker_fp = field(invite, "Our fingerprint")

    demo.step("Harbour's admin connects with them; the nodes pin each other's keys in a signed handshake.")
    connected = demo.refnode(agency, "connect", url, key)
    if field(connected, "Their fingerprint") != broker_fp:
        raise Failure("the fingerprint Harbour sees is not the one Summit read out")
    connection_id = demo.refnode_json(agency, "connections", "list")["connections"][0]["id"]

    demo.step("The admins read their fingerprints to each other (by phone) to rule out a man in the middle.")
    agency_fp = field(demo.refnode(agency, "info"), "fingerprint")
    demo.refnode(broker, "connections", "list")
    seen_by_broker = demo.refnode_json(broker, "connections", "list")["connections"][0]
    if seen_by_broker["peer_fingerprint"] != agency_fp or seen_by_broker["state"] != "active":
        raise Failure(f"Summit sees {seen_by_broker['peer_fingerprint']} ({seen_by_broker['state']}), "
                      f"Harbour says it is {agency_fp}")
    demo.say(f"OK: Summit is {broker_fp} on both sides, Harbour is {agency_fp} on both sides.")

    demo.step("Harbour refers a client who wants a mortgage; the client's consent is recorded in the file.")
    sent = demo.refnode(agency, "refer", "--file", "referral.json", "--connection-id", connection_id)
    local_id = field(sent, "Follow it with").split()[-1]

    demo.step("Summit's node answers with a signed receipt; Harbour keeps it as proof of delivery.")
    demo.wait_until("the delivery receipt", lambda: demo.refnode_json(
        agency, "referrals", "show", local_id)["referral"]["state"] != "sent")
    demo.refnode(agency, "outbox", "list", "--state", "delivered")
    verified = demo.refnode(agency, "receipts", "verify")
    if "referral-offer" not in verified:
        raise Failure("the referral's receipt is not among the verified receipts")
    demo.say("OK: receipt verified.")

    demo.step("Summit's broker finds the referral in their inbox and accepts it.")
    demo.wait_until("the referral at Summit", lambda: demo.refnode_json(broker, "referrals", "list")["referrals"])
    demo.refnode(broker, "referrals", "list", "--side", "receiver")
    theirs = demo.refnode_json(broker, "referrals", "list", "--side", "receiver")["referrals"][0]["local_id"]
    demo.refnode(broker, "referrals", "status", theirs, "accepted")

    demo.step("Work starts: the broker moves it to in-progress; each update travels back to the agency.")
    demo.refnode(broker, "referrals", "status", theirs, "in-progress", "--stage", "valuation ordered")

    demo.step("Harbour sees the whole timeline of its referral.")
    demo.wait_until("the status updates at Harbour", lambda: [e["status"] for e in demo.refnode_json(
        agency, "referrals", "show", local_id)["timeline"]] == ["accepted", "in-progress"])
    demo.refnode(agency, "referrals", "show", local_id)
    demo.say("OK: status update arrived.")

    if keep_serving:
        demo.step("The receipts verify offline too, from the database alone (the nodes keep serving).")
        demo.refnode(agency, "receipts", "verify")
        demo.step("Harbour refers a second client; it waits at Summit for you to accept it in the console.")
        (demo.base / "waiting.json").write_text(json.dumps(second_referral(), indent=2))
        demo.refnode(agency, "refer", "--file", "waiting.json", "--connection-id", connection_id)
        demo.wait_until("the second referral at Summit", lambda: len(demo.refnode_json(
            broker, "referrals", "list", "--side", "receiver")["referrals"]) == 2)
        return
    demo.step("Both nodes stop; the receipts still verify offline, from the database alone.")
    for org in (agency, broker):
        code = demo.stop(org)
        if code != 0:
            raise Failure(f"{org.name}'s node did not stop cleanly on SIGTERM (exit {code}):\n{demo.log_tail(org)}")
        demo.say(f"{org.name}: node stopped cleanly (exit 0).")
    demo.refnode(agency, "receipts", "verify")


class Stopped(Exception):
    """Ctrl-C (SIGINT) or SIGTERM arrived: stop both nodes."""


def serve_consoles(demo: Demo, agency: Org, broker: Org) -> None:
    """Print where each console is and how to sign in; serve until Ctrl-C or SIGTERM."""
    print("\nBoth nodes keep serving. Each organisation has its own console; open them in your browser.")
    print("Each link works once: it opens a page to choose the admin's password, then signs them in.")
    for org in (agency, broker):
        print(f"\n  {org.name} ({org.kind})")
        print(f"    console:  {org.url}/")
        print(f"    sign in:  {org.admin_name} <{org.admin_email}>, admin")
        print(f"    link:     {org.password_link}")
    print(f"\nLater, sign in at <console>/login with the e-mail address and the password you chose."
          f"\nWithout an SMTP server, mail the nodes send is written as .eml files to"
          f"\n{demo.base / agency.folder / 'mail-out'} and {demo.base / broker.folder / 'mail-out'}."
          f"\nLogs: {demo.base / (agency.folder + '.log')} and {demo.base / (broker.folder + '.log')}."
          f"\nPress Ctrl-C to stop both nodes.", flush=True)

    def stopped(signum: int, frame: Any) -> None:
        raise Stopped

    signal.signal(signal.SIGTERM, stopped)
    signal.signal(signal.SIGINT, stopped)  # even when started with SIGINT ignored (in the background)
    try:
        # Ctrl-C in the terminal reaches the nodes too: one that stopped cleanly ends the wait.
        while all(org.process is not None and org.process.poll() is None for org in (agency, broker)):
            time.sleep(0.5)
    except Stopped:
        pass
    print("\nStopping both nodes.", flush=True)
    for org in (agency, broker):
        code = demo.stop(org)
        if code not in (0, None):
            raise Failure(f"{org.name}'s node did not stop cleanly (exit {code}):\n{demo.log_tail(org)}")
        demo.say(f"{org.name}: node stopped.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, help="folder for both nodes (default: a temporary one, removed)")
    parser.add_argument("--keep-serving", action="store_true",
                        help="afterwards, keep both nodes serving and print how to sign in to their consoles")
    args = parser.parse_args(argv)
    base = args.data_dir.absolute() if args.data_dir else Path(tempfile.mkdtemp(prefix="refnode-two-orgs-"))
    base.mkdir(parents=True, exist_ok=True)
    agency = Org("Harbour Realty", "harbour", "ava@harbour-realty.example", "Ava Thompson", "an estate agency",
                 port=free_port())
    # Another host name for the second console: cookies are per host, not per port.
    broker = Org("Summit Mortgage Brokers", "summit", "sam@summit-mortgages.example", "Sam Okafor",
                 "a mortgage broker", port=free_port(), host="localhost" if args.keep_serving else "127.0.0.1")
    demo = Demo(base)
    print(f"Two organisations, one referral. Working folder: {base}")
    try:
        run(demo, agency, broker, keep_serving=args.keep_serving)
        if args.keep_serving:
            serve_consoles(demo, agency, broker)
    except Failure as exc:
        print(f"\nFAILED at step {demo.step_no}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        for org in (agency, broker):
            demo.stop(org)
        if args.data_dir is None:
            shutil.rmtree(base, ignore_errors=True)
    print("\nDone: connected, referred, receipted and followed up, node to node.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
