"""``/healthz`` and ``/readyz``, for load balancers and service managers. Neither needs a
token, and neither says more than which check failed.

- ``GET /healthz``: the process answers (``200 {"status": "ok"}``). Restart it if not.
- ``GET /readyz``: it can do its work. ``200`` with every check ``ok``, else ``503`` with
  the checks that failed; send it no traffic meanwhile:

  - ``database``: a real write, committed and synced like any other (one row of table
    ``health_probe``), within :data:`PROBE_TIMEOUT_S`, and room for the next ones: ``ok``,
    ``full`` (no room for the write, or less than :data:`ROOM_BYTES` left on the
    database's filesystem: a write that failed for want of room leaves a little behind
    in the WAL, where the probe's small row may still fit), ``failed`` (the disk refused
    a sync: restart the node), ``locked`` (another program holds the database's write
    lock), ``timeout`` or ``error``;
  - ``schema``: the database's schema version is the one this release migrates to
    (``ok``), or ``behind`` or ``ahead`` of it (something else changed the file);
  - ``fronts``: every inbox front runs (``ok``), or ``N of M connected``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from typing import Any

from aiohttp import web

from node.federation.runtime import Node
from node.http.appkeys import NODE
from node.storage.disk import unavailable_storage
from node.storage.migrations import LATEST
from protocol.models import format_ts

routes = web.RouteTableDef()

#: The longest the write probe may take before the node is said not ready.
PROBE_TIMEOUT_S = 5.0
#: Less free space than this on the database's filesystem (for the node's user) is ``full``:
#: about what one large envelope's write takes.
ROOM_BYTES = 64 * 1024


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    node = request.app[NODE]
    checks = {"database": await probe_database(node), "schema": await schema_state(node), "fronts": fronts_state(node)}
    ready = all(value == "ok" for value in checks.values())
    body: dict[str, Any] = {"ready": ready, "checks": checks}
    return web.json_response(body, status=200 if ready else 503, headers={"Cache-Control": "no-store"})


async def probe_database(node: Node) -> str:
    stamp = format_ts(node.clock.now())

    def probe(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO health_probe (id, probed_at) VALUES (1, ?) "
                     "ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at", (stamp,))

    try:
        await asyncio.wait_for(node.db.write(probe), PROBE_TIMEOUT_S)
    except TimeoutError:
        return "timeout"
    except Exception as exc:
        why = unavailable_storage(exc)
        if why is not None:
            return why
        if isinstance(exc, sqlite3.OperationalError) and (exc.sqlite_errorcode & 0xFF) == sqlite3.SQLITE_BUSY:
            return "locked"
        return "error"
    return "full" if free_bytes(node) < ROOM_BYTES else "ok"


def free_bytes(node: Node) -> int:
    """Free space for the node's user on the filesystem that holds its database."""
    stat = os.statvfs(node.db.path.parent)
    return stat.f_bavail * stat.f_frsize


async def schema_state(node: Node) -> str:
    try:
        version = await node.db.read(lambda conn: conn.execute("PRAGMA user_version").fetchone()[0])
    except Exception:
        return "error"
    return "ok" if version == LATEST else ("behind" if version < LATEST else "ahead")


def fronts_state(node: Node) -> str:
    if node.fronts is None:  # none configured, or not started yet
        configured = node.config.inbox_workers
        return "ok" if configured == 0 else f"0 of {configured} connected"
    status = node.fronts.status()
    if status["connected"] >= status["configured"]:
        return "ok"
    return f"{status['connected']} of {status['configured']} connected"
