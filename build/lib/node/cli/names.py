"""Names where the API takes ids: the ``refnode`` options that name a workflow, a stage, a
user or a connection take its id or what a person calls it, as CSV import does.

- a workflow by its name (``--workflow-id "Home Loans"``);
- a stage by its name within its workflow (``--stage-id Settled``), which is the one the
  command is about (``--workflow-id``, the deal's), else the only workflow that has it;
- a user by email (``--agent ava@agency.example``);
- a connection by its name (``--connection-id "Summit Mortgage Brokers"``).

Each is resolved through the API (the lists it answers), matching the whole name without
regard to case. A value that starts with the kind's id prefix (``wf_``, ``stg_``,
``usr_``, ``con_``) is taken as an id and left to the API to check. No match, or more
than one, is an error that says what there is to choose from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from node.cli.client import CliError
from node.cli.output import Context

PREFIXES = {"workflow": "wf_", "stage": "stg_", "user": "usr_", "connection": "con_"}


def is_id(kind: str, value: str) -> bool:
    return value.startswith(PREFIXES[kind])


def _pick(kind: str, value: str, option: str, candidates: Iterable[tuple[str, str, str]], *,
          not_found: str, code: str = "not_found", hint: str = "") -> str:
    """The id of the one candidate ``(id, name, label)`` whose name is ``value``."""
    wanted = value.strip().casefold()
    found = [(cid, label) for cid, name, label in candidates if name.strip().casefold() == wanted]
    if len(found) == 1:
        return found[0][0]
    if not found:
        raise CliError(not_found, code=code, field=option)
    choices = "; ".join(f"{label} ({cid})" for cid, label in found)
    raise CliError(f"{len(found)} {kind}s are called {value!r}: {choices}; give the id of the one you mean{hint}",
                   code="ambiguous", field=option)


def _workflows(ctx: Context) -> list[dict[str, Any]]:
    """Every workflow with its stages (asked once per command)."""
    if "workflows" not in ctx.cache:
        ctx.cache["workflows"] = ctx.call("GET", "/api/v1/workflows")["workflows"]
    return list(ctx.cache["workflows"])


def workflow_id(ctx: Context, value: str | None, option: str = "--workflow-id") -> str | None:
    if value is None or is_id("workflow", value):
        return value
    return _pick("workflow", value, option, ((w["id"], w["name"], repr(w["name"])) for w in _workflows(ctx)),
                 not_found=f"no workflow is called {value!r}; give its name or id (see 'refnode workflows list')")


def stage_id(ctx: Context, value: str | None, *, workflow: str | None, option: str = "--stage-id") -> str | None:
    """A stage of ``workflow`` (an id) by name; with no workflow, of any workflow."""
    if value is None or is_id("stage", value):
        return value
    workflows = [w for w in _workflows(ctx) if workflow is None or w["id"] == workflow]
    where = f" in workflow {workflows[0]['name']!r}" if workflow and workflows else ""
    return _pick("stage", value, option,
                 ((s["id"], s["name"], f"{s['name']!r} in {w['name']!r}") for w in workflows for s in w["stages"]),
                 not_found=f"no stage{where} is called {value!r}; give its name or id (see 'refnode workflows list')",
                 hint="" if workflow else ", or name the workflow with --workflow-id")


def deal_workflow(ctx: Context, deal_id: str) -> str:
    """The workflow a deal is in, to find its stages by name."""
    return str(ctx.call("GET", f"/api/v1/deals/{deal_id}")["deal"]["workflow_id"])


def user_id(ctx: Context, value: str | None, option: str) -> str | None:
    """A user by email (or id)."""
    if value is None or is_id("user", value):
        return value
    if "@" not in value:
        raise CliError(f"give a user's email (or id), not {value!r}", code="invalid", field=option)
    try:
        users = ctx.call("GET", "/api/v1/users")["users"]
    except CliError as exc:
        if exc.code == "forbidden":
            raise CliError(f"looking up {option} by email needs an admin token (GET /api/v1/users is for admins); "
                           "give the user's id instead", code="forbidden", field=option) from None
        raise
    return _pick("user", value, option, ((u["id"], u["email"], u["name"]) for u in users),
                 not_found=f"no user with email {value}; see 'refnode users list'", code="unknown_user")


def connection_id(ctx: Context, value: str | None, option: str = "--connection-id") -> str | None:
    """A connection by name (or id). Of several with the name, the one that is active."""
    if value is None or is_id("connection", value):
        return value
    connections = ctx.call("GET", "/api/v1/connections")["connections"]
    named = [c for c in connections if c["name"].strip().casefold() == value.strip().casefold()]
    active = [c for c in named if c["state"] == "active"]
    return _pick("connection", value, option,
                 ((c["id"], c["name"], f"{c['name']!r} ({c['state']})") for c in (active or named)),
                 not_found=f"no connection is called {value!r}; give its name or id (see 'refnode connections list')")
