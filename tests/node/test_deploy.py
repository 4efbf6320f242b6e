"""The deployment files in deploy/, checked by the tools that will run them:

- the systemd unit passes ``systemd-analyze verify`` with no warning (a unit with a typo'd
  directive does not), keeps its sandboxing, and ``serve`` tells systemd when it is ready
  (``Type=notify``), over a real notify socket;
- the Caddyfile is valid for Caddy, and a Caddy running it proxies two real nodes'
  exchange, with the public URL it goes with, while keeping ``/metrics`` to itself.

``.ci/run`` installs Debian's systemd and caddy packages when they are missing; without
them these tests are skipped, saying so."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from conftest import free_port, wait_for
from procs import make_proc_node
from test_two_nodes import connect_by_invitation, referral_body

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "refnode.service"
CADDYFILE = ROOT / "deploy" / "Caddyfile"


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package; .ci/run installs it)")
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60)


def runnable_unit(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at this checkout's refnode (verify checks that the
    program exists and is executable)."""
    text = (text or UNIT.read_text()).replace("/opt/refnode/bin/refnode", f"{sys.executable} -m node.cli")
    path = tmp_path / "refnode.service"
    path.write_text(text)
    return path


def test_the_unit_passes_systemd_analyze_verify_and_keeps_its_sandbox(tmp_path):
    text = UNIT.read_text()
    settings = dict(re.findall(r"(?m)^(\w+)=(.*)$", text))
    assert settings["ProtectSystem"] == "strict" and settings["NoNewPrivileges"] == "yes"
    assert settings["ReadWritePaths"] == "/var/lib/refnode" and "REFNODE_DATA_DIR=/var/lib/refnode" in text
    assert settings["Type"] == "notify" and settings["User"] == "refnode" and settings["CapabilityBoundingSet"] == ""
    checked = analyze("verify", "--man=no", str(runnable_unit(tmp_path)))
    assert checked.returncode == 0 and checked.stderr.strip() == "", checked.stderr
    # The check is real: a typo'd directive and a bad value are reported.
    broken = text.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes").replace("ProtectSystem=strict",
                                                                                "ProtectSystem=strictest")
    (tmp_path / "bad").mkdir()
    checked = analyze("verify", "--man=no", str(runnable_unit(tmp_path / "bad", broken)))
    assert "Unknown key 'NoNewPrivilege'" in checked.stderr and "strictest" in checked.stderr
    # systemd's own exposure score for the sandbox (0 best, 10 worst).
    scored = analyze("security", "--offline=yes", str(runnable_unit(tmp_path)))
    level = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", scored.stdout).group(1))  # type: ignore[union-attr]
    assert level <= 2.0, scored.stdout


@pytest.mark.slow
def test_serve_tells_systemd_when_it_is_ready(tmp_path):
    node = make_proc_node(tmp_path, "Broker")
    notify = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(notify))
        listener.settimeout(30)
        node.env["NOTIFY_SOCKET"] = str(notify)
        node.start()
        try:
            message = listener.recv(4096).decode()
            assert message == "READY=1"
            with urllib.request.urlopen(node.url + "/healthz", timeout=10) as answer:  # noqa: S310
                assert answer.status == 200
        finally:
            node.stop()


def caddy() -> str:
    path = shutil.which("caddy")
    if path is None:
        pytest.skip("caddy is not installed (Debian's caddy package; .ci/run installs it)")
    return path


def test_the_caddyfile_is_valid():
    checked = subprocess.run([caddy(), "validate", "--adapter", "caddyfile", "--config", str(CADDYFILE)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "Valid configuration" in checked.stdout + checked.stderr, checked.stderr


async def test_two_nodes_exchange_through_caddy_running_the_example(node_factory, tmp_path):
    port = free_port()
    proxy_url = f"http://127.0.0.1:{port}"
    # The broker's public URL is the proxy's: invitations, discovery and inboxes name it.
    broker = await node_factory("Broker", public_url=proxy_url)
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "CADDY_ADMIN": f"127.0.0.1:{free_port()}",
           "REFNODE_SITE": proxy_url, "REFNODE_UPSTREAM": f"127.0.0.1:{broker.config.port}"}
    proxy = await asyncio.create_subprocess_exec(caddy(), "run", "--adapter", "caddyfile", "--config",
                                                 str(CADDYFILE), env=env, stdout=asyncio.subprocess.DEVNULL,
                                                 stderr=asyncio.subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as session:
            async def up() -> bool:
                try:
                    async with session.get(proxy_url + "/healthz") as r:
                        return r.status == 200 and (await r.json()) == {"status": "ok"}
                except aiohttp.ClientError:
                    return False

            await wait_for(up, within_s=30)
            token = (broker.config.data_dir / "metrics-token").read_text().strip()
            async with session.get(proxy_url + "/metrics", headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 404  # kept off the internet by the proxy
            async with session.get(f"http://127.0.0.1:{broker.config.port}/metrics",
                                   headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200  # and served on the node's own address
        agency = await node_factory("Agency")
        started = time.monotonic()
        cid, _ = await connect_by_invitation(agency, broker)
        sent = await agency.api("POST", "/api/v1/referrals", referral_body(cid), expect=202)

        async def delivered() -> bool:
            r = await agency.api("GET", f"/api/v1/referrals/{sent['referral']['local_id']}")
            return r["referral"]["state"] == "delivered"

        await wait_for(delivered, within_s=30)
        peers = await agency.node.db.read(lambda conn: conn.execute("SELECT inbox_url FROM peers").fetchall())
        assert [p[0] for p in peers] == [proxy_url + "/refnode/v1/inbox"]
        assert time.monotonic() - started < 30
    finally:
        proxy.terminate()
        await proxy.wait()
