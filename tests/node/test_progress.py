"""Progress bars for a person at a terminal, and nothing else for anyone else: CSV import
and export, backup, restore and ``receipts verify`` draw a bar (rich) when standard output
and standard error are a terminal, here a real pseudo-terminal; piped, or with ``--json``,
what they print is exactly what it was without bars."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from test_two_nodes import connect_by_invitation, referral_body

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BAR = "━"  # what rich draws its bars with


def at_terminal(*args: str) -> tuple[int, str]:
    """Run ``refnode ARGS`` with a pseudo-terminal (120 columns) as standard output and
    error; its exit status and everything it wrote there."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "node.cli", *args], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, env={**os.environ, "TERM": "xterm-256color"})
    os.close(follower)
    seen = bytearray()
    while True:
        try:
            piece = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not piece:
            break
        seen += piece
    os.close(leader)
    return proc.wait(timeout=120), seen.decode("utf-8", "replace")


def piped(*args: str) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout, done.stderr


async def test_long_jobs_show_a_bar_at_a_terminal_and_nothing_else_changes(node_factory, tmp_path):
    agency = await node_factory("Agency")
    broker = await node_factory("Broker")
    cid, _ = await connect_by_invitation(agency, broker)
    for i in range(3):
        await agency.api("POST", "/api/v1/referrals", referral_body(cid, referral_id=f"rfl_bar{i}"))
    config = ("--config", str(agency.config.config_path))
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("first_name,last_name\n" + "".join(f"Sam{i},Lee\n" for i in range(2000)))

    async def run(how, *args):  # type: ignore[no-untyped-def]
        return await asyncio.to_thread(how, *args)

    status, screen = await run(at_terminal, *config, "import", "contacts", str(contacts))
    assert status == 0 and f"Sending {contacts}" in screen and BAR in screen, screen
    assert "Imported 2000 contacts" in screen
    status, out, err = await run(piped, *config, "import", "contacts", str(contacts))
    assert (status, out, err) == (0, f"Imported 2000 contacts from {contacts}.\n", "")
    status, screen = await run(at_terminal, *config, "--json", "import", "contacts", str(contacts))
    assert status == 0 and BAR not in screen and json.loads(screen)["imported"] == 2000

    exported = tmp_path / "out.csv"
    status, screen = await run(at_terminal, *config, "export", "contacts", str(exported))
    assert status == 0 and "Exporting contacts" in screen and BAR in screen and "Exported 6000 contacts" in screen
    status, out, err = await run(piped, *config, "export", "contacts", "-")
    assert status == 0 and err == "" and out == exported.read_text() and BAR not in out

    status, screen = await run(at_terminal, *config, "receipts", "verify")
    assert status == 0 and "Verifying receipts" in screen and "receipt(s) verify" in screen
    status, out, err = await run(piped, *config, "--json", "receipts", "verify")
    assert status == 0 and err == "" and json.loads(out)["invalid"] == []

    archive = tmp_path / "backup.tar.gz"
    status, screen = await run(at_terminal, *config, "backup", str(archive))
    assert status == 0 and "Copying the database" in screen and "Writing the archive" in screen and BAR in screen
    status, screen = await run(at_terminal, "restore", str(archive), "--data-dir", str(tmp_path / "restored"))
    assert status == 0 and "Restoring" in screen and BAR in screen and "every checksum verified" in screen
    status, out, err = await run(piped, "--json", "restore", str(archive), "--data-dir", str(tmp_path / "again"))
    assert status == 0 and err == "" and json.loads(out)["node_id"] == agency.node.me
