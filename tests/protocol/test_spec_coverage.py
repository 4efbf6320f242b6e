"""docs/protocol.md documents every name that protocol/ puts on the wire.

An implementer in another language reads only the spec, so a wire name that the spec
does not mention is a name they cannot implement. Each test lists everything missing.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable, Iterator
from enum import Enum
from pathlib import Path

import pytest
from pydantic import BaseModel

from protocol import wire
from protocol.messages import DOCUMENT_MODELS, MESSAGE_MODELS
from protocol.states import ConnEvent, ConnState, ReferralState
from protocol.suites import SuiteId

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


@pytest.fixture(scope="module")
def spec() -> str:
    assert SPEC_PATH.is_file(), f"{SPEC_PATH} is missing"
    return SPEC_PATH.read_text(encoding="utf-8")


def backticked(spec: str) -> set[str]:
    """Every `code span` of the spec, and each word of a code span that has several
    (so `POST /refnode/v1/inbox` counts for the path and `referral-offer/1.0` for the
    type name)."""
    spans = set(re.findall(r"`([^`\n]+)`", spec))
    words = {w for s in spans for w in re.split(r"[\s/]+", s) if w}
    return spans | words


def missing_in_backticks(spec: str, names: Iterable[str]) -> list[str]:
    found = backticked(spec)
    return sorted({n for n in names if n not in found})


def values(enum: type[Enum]) -> list[str]:
    return [str(member.value) for member in enum]


def test_every_message_type_is_specified(spec: str) -> None:
    missing = missing_in_backticks(spec, values(wire.MessageType))
    assert not missing, f"MessageType values not in docs/protocol.md: {missing}"


def test_every_document_type_is_specified(spec: str) -> None:
    missing = missing_in_backticks(spec, values(wire.DocumentType))
    assert not missing, f"DocumentType values not in docs/protocol.md: {missing}"


def test_every_error_code_is_specified(spec: str) -> None:
    missing = missing_in_backticks(spec, values(wire.ErrorCode))
    assert not missing, f"ErrorCode values not in docs/protocol.md: {missing}"


def test_every_error_code_has_a_row_in_the_error_table(spec: str) -> None:
    rows = set(re.findall(r"^\| `([a-z_]+)` \| .+ \| (?:\d{3}) \| ", spec, flags=re.MULTILINE))
    missing = sorted(set(values(wire.ErrorCode)) - rows)
    assert not missing, (
        f"ErrorCode values without a row (code, meaning, HTTP status, retry): {missing}"
    )


def test_every_disposition_is_specified(spec: str) -> None:
    missing = missing_in_backticks(spec, values(wire.Disposition))
    assert not missing, f"Disposition values not in docs/protocol.md: {missing}"


def test_every_header_name_is_specified(spec: str) -> None:
    headers = [v for k, v in vars(wire).items() if k.startswith("HDR_")]
    assert len(headers) >= 9, "protocol.wire lost its HDR_* constants?"
    missing = missing_in_backticks(spec, headers)
    assert not missing, f"HDR_* header names not in docs/protocol.md: {missing}"


def test_every_path_media_type_and_typ_is_specified(spec: str) -> None:
    names = [
        wire.DISCOVERY_PATH,
        wire.INBOX_PATH,
        wire.INVITATION_PATH,
        wire.MEDIA_TYPE_JOSE_JSON,
        wire.MEDIA_TYPE_PROBLEM,
        wire.TYP_ENVELOPE,
        wire.TYP_INNER,
        wire.TYP_RECEIPT,
        wire.TYP_DISCOVERY,
    ]
    missing = missing_in_backticks(spec, names)
    assert not missing, f"paths, media types or typ values not in docs/protocol.md: {missing}"


def test_every_limit_is_specified(spec: str) -> None:
    limits = {
        "MAX_ENVELOPE_BYTES": wire.MAX_ENVELOPE_BYTES,
        "MAX_ENVELOPE_AGE_S": wire.MAX_ENVELOPE_AGE_S,
        "MAX_CLOCK_SKEW_S": wire.MAX_CLOCK_SKEW_S,
    }
    missing = [
        f"{name}={value}"
        for name, value in limits.items()
        if not re.search(rf"`{name}` \| `{value}`", spec)
    ]
    assert not missing, f"limits without their value in the constants table: {missing}"


def test_every_suite_is_specified(spec: str) -> None:
    missing = missing_in_backticks(spec, values(SuiteId))
    assert not missing, f"SuiteId values not in docs/protocol.md: {missing}"


def test_every_state_and_event_is_specified(spec: str) -> None:
    names = values(ConnState) + values(ConnEvent) + values(ReferralState)
    missing = missing_in_backticks(spec, names)
    assert not missing, f"state machine states or events not in docs/protocol.md: {missing}"


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    """Every pydantic model in a field annotation (through lists, unions, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from _models_in(typing.get_args(annotation)[0])
        return
    if origin is not None or isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _models_in(arg)


def wire_fields(roots: Iterable[type[BaseModel]]) -> dict[str, set[str]]:
    """Wire name (alias, else name) -> the models that have it, for the roots and every
    model nested in them."""
    seen: set[type[BaseModel]] = set()
    todo = list(roots)
    out: dict[str, set[str]] = {}
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            out.setdefault(field.alias or name, set()).add(model.__name__)
            todo.extend(_models_in(field.annotation))
    return out


def test_field_walk_uses_wire_names() -> None:
    fields = wire_fields(DOCUMENT_MODELS.values())
    assert "from" in fields and "from_" not in fields
    assert {"kid", "jwk", "inbox", "kty"} <= set(fields)  # nested models are walked


def test_every_message_and_document_field_is_specified(spec: str) -> None:
    fields = wire_fields([*MESSAGE_MODELS.values(), *DOCUMENT_MODELS.values()])
    missing = [
        f"{name} ({', '.join(sorted(models))})"
        for name, models in sorted(fields.items())
        if f"`{name}`" not in spec
    ]
    assert not missing, f"fields not in backticks in docs/protocol.md: {missing}"
