"""Turning input into a CRM model: :func:`parse` validates or raises
``CrmError("invalid")`` naming the first field at fault, and :func:`field_errors` lists
every problem as ``(field, message)`` in plain words (CSV import reports them all).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from node.crm.errors import CrmError

M = TypeVar("M", bound=BaseModel)


def field_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """Every problem as ``(field, message)``; the field is a dotted path."""
    out: list[tuple[str, str]] = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(input)"
        out.append((field, _message(err["type"], err["msg"])))
    return out


_MESSAGES: dict[str, Callable[[str], str]] = {
    "missing": lambda _: "is required",
    "extra_forbidden": lambda _: "is not a known field",
    "value_error": lambda msg: msg.removeprefix("Value error, "),
    "string_type": lambda _: "must be a string",
}


def _message(kind: str, msg: str) -> str:
    fix = _MESSAGES.get(kind)
    if fix is not None:
        return fix(msg)
    return msg.replace("Input should be", "must be").replace("String should", "must")


def parse(model: type[M], data: Any) -> M:
    """Validate ``data`` as ``model``, or raise ``CrmError("invalid")`` naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = field_errors(exc)
        field, message = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CrmError("invalid", f"{field}: {message}{more}", field) from None
