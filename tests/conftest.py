"""Fixtures shared by the node tests: real nodes on 127.0.0.1, each with its own data
folder, keys and SQLite file, talking real HTTP."""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import socket
import sqlite3
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import structlog
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from node.base.config import Config  # noqa: E402
from node.cli.setup import init_node  # noqa: E402
from node.federation.runtime import Node  # noqa: E402
from node.http.appkeys import NODE  # noqa: E402
from node.storage.db import Database  # noqa: E402
from node.web.site import create_site  # noqa: E402

#: The browser tests' fixtures (``browser``, ``smtp``): one conftest module name for the
#: whole tree, so that ``from conftest import ...`` always finds this file.
pytest_plugins = ["web_kit"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningNode:
    name: str
    config: Config
    token: str
    app: web.Application | None = None
    runner: web.AppRunner | None = None
    session: aiohttp.ClientSession | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.config.public_url

    @property
    def node(self) -> Node:
        assert self.app is not None
        return self.app[NODE]

    async def api(self, method: str, path: str, json: Any = None, *, token: str | None = None,
                  expect: int | None = None) -> Any:
        assert self.session is not None
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with self.session.request(method, self.url + path, json=json, headers=headers) as resp:
            body = await resp.json()
            if expect is not None:
                assert resp.status == expect, (resp.status, body)
            elif resp.status >= 400:
                raise AssertionError(f"{method} {path} -> {resp.status}: {body}")
            return body

    async def start(self, **app_kwargs: Any) -> None:
        self.app = create_site(self.config, **app_kwargs)
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.config.port).start()
        if self.session is None:
            self.session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def close(self) -> None:
        await self.stop()
        if self.session is not None:
            await self.session.close()
            self.session = None


def make_config(tmp_path: Path, name: str, **overrides: Any) -> Config:
    port = free_port()
    settings: dict[str, Any] = {
        "data_dir": tmp_path / name,
        "port": port,
        "org_name": name,
        "retry_base_delay_s": 0.2,
        "retry_max_delay_s": 2.0,
        "outbox_poll_interval_s": 0.2,
        "request_timeout_s": 10.0,
        "log_format": "json",
        "log_level": "warning",
    }
    settings.update(overrides)
    return Config(**settings)


NodeFactory = Callable[..., Awaitable[RunningNode]]


_TEMPLATE: list[Path] = []


def _migrated_copy(target: Path) -> None:
    """An empty database at the latest schema, for a node the factories make: a copy of one
    that this test process migrated once with our own migrations (sixty of them take some
    0.35 s a node, and a connected pair is two nodes a test). Tests of migrations
    themselves open their own files."""
    if not _TEMPLATE or not _TEMPLATE[0].exists():
        folder = Path(tempfile.mkdtemp(prefix="refnode-template-"))
        atexit.register(shutil.rmtree, folder, True)
        Database(folder / "node.db").close_sync()
        _TEMPLATE[:] = [folder / "node.db"]
    target.parent.mkdir(parents=True, exist_ok=True)
    source, copy = sqlite3.connect(_TEMPLATE[0]), sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()


def _factory(folder: Path, started: list[RunningNode]) -> NodeFactory:
    async def make(name: str, *, start: bool = True, **overrides: Any) -> RunningNode:
        config = make_config(folder, name, **overrides)
        _migrated_copy(config.database_path)
        result = init_node(config, admin_email=f"admin@{name.lower()}.example", admin_name=f"{name} Admin")
        running = RunningNode(name, config, result.admin_token)
        running.extra["password_link"] = result.password_link
        running.extra["admin_email"] = f"admin@{name.lower()}.example"
        if start:
            await running.start()
        started.append(running)
        return running

    return make


@pytest.fixture
async def node_factory(tmp_path: Path) -> AsyncIterator[NodeFactory]:
    started: list[RunningNode] = []
    yield _factory(tmp_path, started)
    for running in started:
        await running.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_node_factory(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NodeFactory]:
    """Nodes shared by a module's tests (which run in the module's event loop: mark them
    ``pytest.mark.asyncio(loop_scope="module")``). Only for tests that change nothing, or
    check what they change against a snapshot taken just before (hostile.refused): the
    hostile-sender cases, say, which would otherwise start a connected pair each."""
    started: list[RunningNode] = []
    yield _factory(tmp_path_factory.mktemp("shared"), started)
    for running in started:
        await running.close()


#: The tests a mutant of protocol/ is tried against (.ci/mutation): the protocol's own, and
#: the hostile sender's refusals, which send what our own sender never does.
PROTOCOL_MUTANT_TESTS = ("tests/protocol/", "tests/node/test_hostile_sender.py::",
                         "tests/node/test_hostile_lifecycle.py::test_each_")


def _mutant_under_test() -> str:
    """The mutant mutmut runs these tests against, or "" outside its mutant runs (its stats
    and generation runs name no mutant)."""
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    return "" if mutant in ("stats", "mutant_generation") else mutant


@pytest.fixture(scope="session", autouse=True)
def _a_mutants_tests_leave_no_files(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Under mutation testing, each mutant's session removes its temporary folder (nodes'
    databases, keys) when it ends. pytest keeps the last three and would clean older ones,
    but not while their lock files say they are in use, for three days: mutmut's children
    end without removing theirs, and a whole run left 17 MB a mutant, 75 GB in two runs."""
    yield
    if _mutant_under_test():
        shutil.rmtree(tmp_path_factory.getbasetemp(), ignore_errors=True)


def _listed_unchanged(mutant: str) -> bool:
    """Whether tests/mutation-survivors.md accepts ``mutant`` (equivalent, timing-only) with
    the very change mutmut made this time (see tests/mutation_list.py)."""
    from mutation_list import accepted_changes, one_line_diff

    listed = accepted_changes().get(mutant)
    return listed is not None and one_line_diff(mutant, Path.cwd().parent) == listed


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under mutation testing (``bash .ci/mutation``), the fast protocol tests first: most
    mutants are killed by one of them, and the run stops at the first failure. A mutant
    of protocol/ is tried only against :data:`PROTOCOL_MUTANT_TESTS` of the tests that call
    the function it changes: the spec's code answers to the spec's tests, not to every
    node test that happens to sign or parse something on the way (which would make each
    surviving protocol mutant a run of the whole selection). A mutant the survivors' list
    accepts, with the change it lists, runs no test."""
    mutant = _mutant_under_test()
    if not mutant:
        return
    if _listed_unchanged(mutant):  # no test runs: mutmut records "no tests" (exit code 5)
        config.hook.pytest_deselected(items=list(items))
        items[:] = []
        return
    items.sort(key=lambda item: 0 if "tests/protocol/" in item.nodeid else 1)
    if mutant.startswith("protocol."):
        kept = [item for item in items if any(part in item.nodeid for part in PROTOCOL_MUTANT_TESTS)]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


#: How long a test waits for something to happen before it fails. Mutation testing
#: (.ci/mutation) waits less: a mutant that stops a handshake or a delivery would
#: otherwise hold each of its tests for the whole wait.
WAIT_S = float(os.environ.get("REFNODE_TEST_WAIT_S", "15"))


#: The internal errors the nodes of this test process logged: an envelope the inbox could
#: not take for a reason of its own ("envelope failed", answered ``internal``) and a request
#: answered 500 ("unhandled error"). Neither should ever happen; a wait ends at once when one
#: is logged, naming it, instead of running out its time while the sender retries (which
#: made most of a mutation run's killed mutants cost the whole wait).
INTERNAL_ERRORS: list[dict[str, Any]] = []
_INTERNAL_EVENTS = ("envelope failed", "unhandled error")


def _note_internal_error(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    if method == "error" and event_dict.get("event") in _INTERNAL_EVENTS:
        INTERNAL_ERRORS.append({k: event_dict[k] for k in ("event", "error", "raised_at", "type", "path")
                                if k in event_dict})
    return event_dict


# Tests run the nodes in this process with structlog's default set-up (what a console
# shows); a node started through the CLI here configures its own, without this step.
structlog.configure(processors=[_note_internal_error, *structlog.get_config()["processors"]])


async def wait_for(predicate: Callable[[], Awaitable[bool]], *, within_s: float | None = None,
                   interval: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + (WAIT_S if within_s is None else within_s)
    errors_before = len(INTERNAL_ERRORS)
    while True:
        if await predicate():
            return
        if len(INTERNAL_ERRORS) > errors_before:
            raise AssertionError(f"a node hit an internal error while this waited: {INTERNAL_ERRORS[errors_before]}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
