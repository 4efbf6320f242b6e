"""Nodes as real operating-system processes (``refnode serve``), for crash tests."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import make_config

from node.base.config import Config
from node.cli.setup import init_node

FAST = {
    "REFNODE_RETRY_BASE_DELAY_S": "0.2",
    "REFNODE_RETRY_MAX_DELAY_S": "1.0",
    "REFNODE_OUTBOX_POLL_INTERVAL_S": "0.2",
    "REFNODE_LOG_FORMAT": "json",
    "REFNODE_LOG_LEVEL": "warning",
}


@dataclass
class ProcNode:
    name: str
    config: Config
    token: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)
    #: Extra REFNODE_* variables for ``serve``, e.g. {"REFNODE_INBOX_WORKERS": "2"}.
    env: dict[str, str] = field(default_factory=dict)
    #: RLIMIT_NOFILE (soft, hard) for ``serve``, set in the child before it runs.
    nofile: tuple[int, int] | None = None

    @property
    def url(self) -> str:
        return self.config.public_url

    def start(self, timeout_s: float = 20.0) -> None:
        env = {**os.environ, **FAST, **self.env}
        env.pop("REFNODE_TOKEN", None)
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "--config", str(self.config.config_path), "serve"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).resolve().parent.parent,
            preexec_fn=self._set_limits if self.nofile else None,
        )
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/.well-known/refnode", timeout=1) as r:  # noqa: S310
                    # The node process answers before its fronts serve; it says it listens
                    # once they all have said hello (they serve a moment later).
                    if r.status == 200 and self.log_path.read_text().count(" listening on ") >= self.starts:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start")

    def _set_limits(self) -> None:
        assert self.nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def api(self, method: str, path: str, body: Any = None, timeout_s: float = 10.0) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310
            self.url + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as r:  # noqa: S310
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


def make_proc_node(tmp_path: Path, name: str, *, inbox_workers: int = 0) -> ProcNode:
    config = make_config(tmp_path, name)
    result = init_node(config, admin_email=f"admin@{name.lower()}.example", admin_name=f"{name} Admin")
    env = {"REFNODE_INBOX_WORKERS": str(inbox_workers)} if inbox_workers else {}
    return ProcNode(name, config, result.admin_token, tmp_path / f"{name}.log", env=env)


def child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has exited
