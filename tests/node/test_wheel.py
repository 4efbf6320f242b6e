"""Spec 21 tells a third party that ``pip install referral-node`` is all they need beside
the spec and the vectors. This holds it to that: a wheel built from this checkout, installed
(``--no-deps``: the dependencies come from the system) into a fresh venv in a temporary
folder outside the repository, gives ``refnode conformance``; a node started from that
install, with the working folder outside the repository and no PYTHONPATH, passes a whole
conformance run by the installed suite. Every module comes from the venv, not from here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port

REPO = Path(__file__).resolve().parents[2]
HOOK = REPO / "examples" / "conformance" / "refnode_hook.py"
SPEC = REPO / "docs" / "protocol.md"

pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    """The environment of a third party's shell: nothing points into this checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("REFNODE_")}
    return env | {"REFNODE_LOG_FORMAT": "json", "REFNODE_LOG_LEVEL": "warning", **extra}


def _run(argv: list[str], cwd: Path, timeout_s: float, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=timeout_s)


def _source_copy(target: Path) -> Path:
    """The checkout's files (tracked, and new ones not ignored) as they are on disk, copied,
    so that building writes no build/ or egg-info into the worktree."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, target / rel)
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(venv, wheel): the wheel built from this checkout, installed into a fresh venv."""
    work = tmp_path_factory.mktemp("wheel")
    assert not work.resolve().is_relative_to(REPO)
    source = _source_copy(work / "src")
    build = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"),
                  str(source)], work, 600)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = (work / "dist").glob("referral_node-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True, timeout=120)
    # --ignore-installed: the system may hold an editable referral-node of another checkout
    install = _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", "--ignore-installed", str(wheel)], work, 300)
    assert install.returncode == 0, install.stdout + install.stderr
    return venv, wheel


def test_the_wheel_holds_the_suite_and_the_node_but_not_the_vectors(installed: tuple[Path, Path]) -> None:
    _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("conformance/run.py", "protocol/envelope.py", "node/cli/conformance.py",
                   "node/web/templates/base.html"):
        assert module in names
    # 21 sends the reader to the vectors and schemas published with this document (19),
    # not to the package: none is in it, and both are beside the spec
    assert not [n for n in names if n.endswith(".json") and ("vectors" in n or "schema" in n)]
    section = SPEC.read_text(encoding="utf-8").split("## 21. Testing an implementation", 1)[1]
    section = section.split("\n## ", 1)[0]
    assert "pip install referral-node" in section and "not in the package" in section
    assert len(list((REPO / "docs" / "vectors").glob("*.json"))) >= 10
    assert len(list((REPO / "schemas").glob("*.schema.json"))) >= 10


def assert_imports_from(venv: Path, cwd: Path) -> None:
    """The venv's Python, in ``cwd`` and a third party's environment, imports our packages
    from the venv. (Through --system-site-packages it could also see an editable install of
    some checkout, which would hide a package missing from the wheel.)"""
    found = _run([str(venv / "bin" / "python"), "-c",
                  "import json, conformance, conformance.run, node, node.cli.conformance, protocol; "
                  "print(json.dumps([m.__file__ for m in (conformance, conformance.run, node, "
                  "node.cli.conformance, protocol)]))"], cwd, 60)
    assert found.returncode == 0, found.stderr
    for path in json.loads(found.stdout):
        assert Path(path).is_relative_to(venv), path


def test_the_installed_modules_come_from_the_venv(installed: tuple[Path, Path], tmp_path: Path) -> None:
    venv, _ = installed
    assert_imports_from(venv, tmp_path)
    helped = _run([str(venv / "bin" / "refnode"), "conformance", "--help"], tmp_path, 60)
    assert helped.returncode == 0, helped.stderr
    for option in ("--key", "--expired-url", "--one-way-url", "--hook", "--listen", "--public-url",
                   "--request", "--junit", "--no-input"):
        assert option in helped.stdout  # each option 21 tells the reader to use


class _Node:
    """A node started from the installed wheel: ``refnode init`` and ``refnode serve``."""

    def __init__(self, venv: Path, folder: Path) -> None:
        self.refnode = str(venv / "bin" / "refnode")
        self.folder = folder
        self.url = f"http://127.0.0.1:{free_port()}"
        made = _run([self.refnode, "init", "--data-dir", str(folder / "data"), "--org-name", "Wheel",
                     "--admin-email", "admin@wheel.example", "--port", self.url.rsplit(":", 1)[1], "--json"],
                    folder, 120)
        assert made.returncode == 0, made.stderr
        self.config = json.loads(made.stdout)["config_path"]
        self.token = (folder / "data" / "admin-token").read_text().strip()
        self.log = folder / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.refnode, "--config", self.config, "serve"], cwd=self.folder,
                                         env=_env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                with urllib.request.urlopen(self.url + "/.well-known/refnode", timeout=1) as r:  # noqa: S310
                    if r.status == 200 and " listening on " in self.log.read_text():
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise AssertionError(f"the installed node did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def invitation(self, **body: Any) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310
            self.url + "/api/v1/invitations", data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310
            assert r.status == 201
            return dict(json.loads(r.read()))

    def cmdline(self) -> list[str]:
        """The serving process's command line: the interpreter and the script it runs."""
        assert self.proc is not None
        return [p.decode() for p in Path(f"/proc/{self.proc.pid}/cmdline").read_bytes().split(b"\0") if p]


def test_a_conformance_run_from_the_installed_wheel(installed: tuple[Path, Path], tmp_path: Path) -> None:
    venv, _ = installed
    assert not tmp_path.resolve().is_relative_to(REPO)
    assert_imports_from(venv, tmp_path)  # what the node and the suite below import
    node = _Node(venv, tmp_path)
    node.start()
    try:
        # the venv's interpreter runs the venv's script (the imports it makes from there, with
        # this environment and folder, are those of test_the_installed_modules_come_from_the_venv)
        interpreter, *argv = node.cmdline()
        assert Path(interpreter).is_relative_to(venv), interpreter
        assert argv == [str(venv / "bin" / "refnode"), "--config", node.config, "serve"]
        both = node.invitation(name="Conformance", direction="both")
        old = node.invitation(name="Old", direction="both", ttl_s=1)
        one_way = node.invitation(name="One way", direction="send")
        time.sleep(1.2)  # the second one expires
        hook = shutil.copy(HOOK, tmp_path / "hook.py")  # the admin's script, as a third party has it
        junit = tmp_path / "conformance.xml"
        started = time.monotonic()
        run = _run([str(venv / "bin" / "refnode"), "conformance", both["referral_url"], "--key", both["referral_key"],
                    "--expired-url", old["referral_url"], "--expired-key", old["referral_key"],
                    "--one-way-url", one_way["referral_url"], "--one-way-key", one_way["referral_key"],
                    "--hook", str(hook), "--no-input", "--wait", "30", "--junit", str(junit)],
                   tmp_path, 300, REFNODE_HOOK_URL=node.url, REFNODE_HOOK_TOKEN=node.token)
        seconds = time.monotonic() - started
    finally:
        node.stop()
    lines = run.stdout.splitlines()
    checks = [line for line in lines if line[:4] in ("PASS", "FAIL", "SKIP")]
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(checks) >= 60 and all(line.startswith("PASS") for line in checks), run.stdout
    assert junit.is_file()
    print(f"conformance from the installed wheel: {len(checks)} checks in {seconds:.1f} s")
