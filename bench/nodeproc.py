"""Nodes (and reference servers) as real operating-system processes, for the benchmarks.

A node runs with ``python -m node.cli --config PATH serve``: its own process with its own
data folder, SQLite file and keys, listening on 127.0.0.1.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from node.base.config import Config  # noqa: E402
from node.cli.setup import init_node  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_command(config_path: Path) -> tuple[list[str], str]:
    """The command that runs a node from ``config_path``, and how it was chosen."""
    return [sys.executable, "-m", "node.cli", "--config", str(config_path), "serve"], "python -m node.cli serve"


def make_node(
    workdir: Path, name: str, *, port: int | None = None, passphrase: bytes | None = None
) -> tuple[Config, str]:
    """``refnode init`` a node in ``workdir/name`` (its keys sealed under ``passphrase`` if
    given); return its configuration and admin token."""
    port = port or free_port()
    config = Config(data_dir=workdir / name, port=port, org_name=name)
    result = init_node(
        config,
        admin_email=f"admin@{name.lower().replace(' ', '-')}.example",
        admin_name=f"{name} Admin",
        passphrase=passphrase,
    )
    return config, result.admin_token


def wait_http(
    url: str, proc: subprocess.Popen[bytes], log_path: Path | None, timeout_s: float = 30.0
) -> None:
    """Wait until ``url`` answers 200, failing early if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (
                log_path.read_text(errors="replace")[-3000:]
                if log_path and log_path.exists()
                else ""
            )
            raise RuntimeError(
                f"process exited with {proc.returncode} before {url} answered:\n{tail}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


class Proc:
    """A child process with its output in a log file; stopped with SIGTERM."""

    def __init__(
        self,
        cmd: list[str],
        log_path: Path,
        *,
        env: dict[str, str | None] | None = None,
        ready_url: str | None = None,
    ) -> None:
        self.cmd = cmd
        self.log_path = log_path
        merged: dict[str, str | None] = {**os.environ, **(env or {})}
        self.env = {k: v for k, v in merged.items() if v is not None}  # None unsets
        self.ready_url = ready_url
        self.proc: subprocess.Popen[bytes] | None = None
        #: How long ``with`` waits for ``ready_url`` to answer.
        self.start_timeout_s = 30.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout_s: float = 30.0) -> Proc:
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen(
            self.cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT
        )
        log.close()
        if self.ready_url is not None:
            try:
                wait_http(self.ready_url, self.proc, self.log_path, timeout_s)
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> Proc:
        return self.start(self.start_timeout_s)

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def node_proc(
    config_path: Path, url: str, log_path: Path, env: dict[str, str | None] | None = None
) -> Proc:
    """A node process serving from ``config_path``; ready when its discovery answers.
    Logs go to ``log_path`` as JSON lines (the production format); the keys have no
    passphrase, so any REFNODE_KEY_PASSPHRASE of the caller is unset."""
    cmd, _ = serve_command(config_path)
    base: dict[str, str | None] = {
        "REFNODE_LOG_FORMAT": "json",
        "REFNODE_KEY_PASSPHRASE": None,
        "REFNODE_TOKEN": None,
    }
    return Proc(cmd, log_path, env=base | (env or {}), ready_url=url + "/.well-known/refnode")


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) has used, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    kids = Path(f"/proc/{pid}/task/{pid}/children")
    children = [int(c) for c in kids.read_text().split()] if kids.exists() else []
    return own + sum(cpu_seconds(c) for c in children)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank on sorted values."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
