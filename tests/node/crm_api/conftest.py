"""Helpers for the CRM admin-API tests: raw HTTP calls (any token or none, JSON or CSV
bodies), users with their own tokens, and a snapshot of every CRM table to prove that a
refused call left nothing behind."""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass
from typing import Any

from conftest import RunningNode

#: Every table a CRM call may write, users and tokens included.
TABLES = (
    "users", "api_tokens", "workflows", "stages", "contacts", "deals", "deal_contacts",
    "notes", "documents",
)  # fmt: skip

ADMIN = object()  # the node's first admin token
NONE = object()  # no Authorization header


@dataclass(frozen=True)
class Csv:
    """A CSV request body (text, or raw bytes to send as they are)."""

    text: str | bytes
    content_type: str = "text/csv"


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]
    text: str


async def call(
    n: RunningNode, method: str, path: str, body: Any = None, *, token: Any = ADMIN
) -> Answer:
    """One request; ``body`` is JSON, a :class:`Csv`, or None for no body."""
    assert n.session is not None
    headers: dict[str, str] = {}
    if token is ADMIN:
        headers["Authorization"] = f"Bearer {n.token}"
    elif token is not NONE:
        headers["Authorization"] = f"Bearer {token}"
    kwargs: dict[str, Any] = {}
    if isinstance(body, Csv):
        data = body.text.encode("utf-8") if isinstance(body.text, str) else body.text
        headers["Content-Type"] = body.content_type
        kwargs["data"] = data
    elif body is not None:
        kwargs["json"] = body
    async with n.session.request(method, n.url + path, headers=headers, **kwargs) as resp:
        text = await resp.text()
        parsed = jsonlib.loads(text) if resp.content_type == "application/json" else None
        return Answer(resp.status, parsed, dict(resp.headers), text)


async def add_user(n: RunningNode, email: str, name: str, role: str = "broker") -> str:
    body = {"email": email, "name": name, "role": role}
    return (await n.api("POST", "/api/v1/users", body, expect=201))["user"]["id"]


async def token_for(n: RunningNode, user_id: str) -> str:
    return (await n.api("POST", "/api/v1/tokens", {"user_id": user_id}, expect=201))["token"]


#: Columns compared, where not all.
COLUMNS = {"api_tokens": "id, user_id, token_hash, label, created_at, revoked_at"}


async def snapshot(n: RunningNode) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every CRM table, in storage order. A token's last use is
    left out: a request that is refused after its token is checked still used the token."""

    def read(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
        return {
            t: [tuple(r) for r in conn.execute(f"SELECT {COLUMNS.get(t, '*')} FROM {t} ORDER BY rowid")]
            for t in TABLES
        }

    return await n.node.db.read(read)
