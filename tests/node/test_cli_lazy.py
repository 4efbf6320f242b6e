"""``refnode`` loads the module of the command asked for, not all of them: ``serve`` holds
none of the API client's commands, the archive's or the conformance suite's. The table
that says which module adds which command (``node.cli.main.COMMANDS``) is checked against
what the modules really add, and commands are run in processes of their own to see what
they loaded."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from node.cli.main import COMMAND_MODULES, COMMANDS, build_parser, command_names, command_word

#: Run a command in-process, then print what it answered and which of node.cli was loaded.
RUN = r"""
import json, sys
from node.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # --help, and a usage error
    code = exc.code
sys.stdout.flush()
print("LOADED " + json.dumps(sorted(m for m in sys.modules if m.startswith("node.cli."))))
sys.exit(code)
"""


def _top_level(parser: argparse.ArgumentParser) -> set[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


def test_the_table_says_which_modules_add_each_command() -> None:
    added: dict[str, tuple[str, ...]] = {}
    for module in COMMAND_MODULES:
        for word in _top_level(build_parser((module,))):
            added[word] = added.get(word, ()) + (module,)
    assert added == COMMANDS
    # the parser of one command has all of it: each command's subcommands as the full one's
    full = command_names()
    for word, modules in COMMANDS.items():
        own = command_names(build_parser(modules))
        assert [n for n in full if n.split()[0] == word] == [n for n in own if n.split()[0] == word]


@pytest.mark.parametrize(("argv", "word"), [
    (["serve"], "serve"),
    (["--config", "x.toml", "--json", "serve", "--port", "1"], "serve"),
    (["--data-dir", "deals", "workflows", "list"], "workflows"),
    (["--config=x.toml", "deals", "list"], "deals"),
    (["--help", "serve"], None),
    (["--version"], None),
    ([], None),
])
def test_the_command_word(argv: list[str], word: str | None) -> None:
    assert command_word(argv) == word


def _run(args: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("REFNODE_TOKEN", None)
    run = subprocess.run([sys.executable, "-c", RUN, *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    lines = run.stdout.splitlines()
    loaded = set(json.loads(next(line[7:] for line in lines if line.startswith("LOADED "))))
    return run, loaded


@pytest.mark.slow
def test_a_command_loads_only_its_own_module_and_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run, loaded = _run(["--data-dir", str(data), "--json", "init", "--org-name", "Lazy Ltd",
                        "--admin-email", "admin@lazy.example"], tmp_path)
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout[:run.stdout.index("LOADED ")])
    assert answer["org_name"] == "Lazy Ltd" and (data / "keys").is_dir()
    assert "node.cli.running" in loaded
    assert not loaded & {"node.cli.backup", "node.cli.archive", "node.cli.conformance", "node.cli.connections",
                         "node.cli.deals", "node.cli.referring", "node.cli.csv_files"}

    archive = tmp_path / "node.refnode-backup"
    run, loaded = _run(["--data-dir", str(data), "backup", str(archive)], tmp_path)
    assert run.returncode == 0, run.stderr
    assert archive.stat().st_size > 0
    assert "node.cli.backup" in loaded and "node.cli.running" not in loaded
    assert "node.cli.conformance" not in loaded


@pytest.mark.slow
def test_help_lists_every_command(tmp_path: Path) -> None:
    run, loaded = _run(["--help"], tmp_path)
    assert run.returncode == 0
    for word in COMMANDS:
        assert f"    {word} " in run.stdout or f"    {word}\n" in run.stdout, word
    assert {f"node.cli.{m}" for m in COMMAND_MODULES} <= loaded


@pytest.mark.slow
def test_a_word_that_is_no_command_is_refused_with_the_whole_list(tmp_path: Path) -> None:
    run, _ = _run(["serv"], tmp_path)
    assert run.returncode == 2
    assert "invalid choice: 'serv'" in run.stderr and "conformance" in run.stderr
