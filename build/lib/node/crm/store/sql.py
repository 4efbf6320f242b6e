"""What the CRM's table modules share: how a time and a JSON value are written to a
column, how a search term and a page size go into SQL, and the ``not_found`` error for a
record that is not there.

These are for the modules of ``node.crm.store`` only; the package does not re-export them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from node.crm.errors import CrmError
from protocol.models import format_ts


def _ts(now: datetime) -> str:
    return format_ts(now)


def _json(value: Any) -> str:
    if not value and isinstance(value, dict | list):  # most labels and custom fields
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _missing(what: str, id_: str, field: str | None = None) -> CrmError:
    return CrmError("not_found", f"{what} {id_!r} not found", field)


def _raise_first(problems: list[CrmError]) -> None:
    if problems:
        raise problems[0]


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _limit(limit: int | None) -> int:
    return -1 if limit is None else max(0, int(limit))


def _where(conditions: list[str]) -> str:
    """A WHERE clause of every condition, or nothing."""
    return "WHERE " + " AND ".join(conditions) if conditions else ""
