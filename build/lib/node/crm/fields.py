"""The field types the CRM's models are built from, each an ``Annotated`` type that
carries its own check and a message saying what is expected: ids, money, currency,
email, phone, country, dates and times, names and texts of bounded length, labels and
custom fields, and the fixed vocabularies (roles, note kinds, origins).

Money is a decimal string, never a float. Times are RFC 3339 UTC text
(``2026-11-23T11:30:00Z``), set by the store from the caller's ``now``. ``Blank`` makes
a blank string mean "none" in an optional field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationInfo,
)
from pydantic_core import core_schema

from node.base.inputs import PlainText, is_stored, text_problem


@dataclass(frozen=True)
class _Matching:
    """A text type that must match ``pattern`` whole, checked as sent; with ``padded``,
    spaces around it are allowed and stripped (CSV cells have them). It is checked
    again after any stripping the model does. The OpenAPI document carries the same
    pattern (and ``format``, if given)."""

    pattern: str
    message: str
    padded: bool = True
    format: str | None = None

    def _check(self, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and not is_stored(info):
            if not re.fullmatch(self._sent, value):
                raise ValueError(self.message)
            return value.strip(" ")
        return value

    @property
    def _sent(self) -> str:
        return f" *(?:{self.pattern}) *" if self.padded else self.pattern

    def _check_stripped(self, value: str, info: ValidationInfo) -> str:
        if not is_stored(info) and not re.fullmatch(self.pattern, value):
            raise ValueError(self.message)
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        inner = core_schema.with_info_after_validator_function(self._check_stripped, handler(source))
        return core_schema.with_info_before_validator_function(self._check, inner)

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        json_schema = handler(schema)
        json_schema["pattern"] = f"^{self._sent}$"
        if self.format is not None:
            json_schema["format"] = self.format
        return json_schema


@dataclass(frozen=True)
class _Documented:
    """The pattern a text type's own validator checks, for the OpenAPI document (spaces
    around it allowed, as they are stripped)."""

    pattern: str

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        json_schema = handler(schema)
        json_schema["pattern"] = f"^ *(?:{self.pattern}) *$"
        return json_schema


def _matching(pattern: str, message: str, *, padded: bool = True, format: str | None = None) -> _Matching:
    return _Matching(pattern, message, padded, format)


@dataclass(frozen=True)
class _Blank:
    """An optional text field where an empty string (or only spaces) means "none"."""

    def _none_if_blank(self, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip(" ") else value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self._none_if_blank, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        json_schema = handler(schema)
        blank = {"type": "string", "pattern": "^ *$", "description": "blank: none"}
        if "anyOf" in json_schema:
            return {**json_schema, "anyOf": [*json_schema["anyOf"], blank]}
        return {"anyOf": [json_schema, blank]}


#: An optional text field: a blank string means "none".
Blank = _Blank()

#: Characters that end an email's local part or domain: "@", controls, and every space
#: (spelt out: Python's and JSON Schema's "\s" differ).
_NOT_IN_EMAIL = r"@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"

Id = Annotated[
    str,
    _matching(r"[A-Za-z0-9_-]{1,64}", "must be an id: 1 to 64 letters, digits, '_' or '-'", padded=False),
]
#: Money: a non-negative decimal string, up to 15 integer and 4 fraction digits.
Money = Annotated[
    str,
    _matching(
        r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,4})?",
        "must be a decimal string such as '250000.00' (no sign, separators or exponent; "
        "at most 4 decimals)",
    ),
]
Currency = Annotated[str, _matching(r"[A-Z]{3}", "must be an ISO 4217 code such as 'AUD'")]
Email = Annotated[
    str,
    StringConstraints(max_length=254),
    _matching(f"[^{_NOT_IN_EMAIL}]{{1,64}}@[^{_NOT_IN_EMAIL}]{{1,253}}", "must be an email address"),
    PlainText(max_length=254),
]
Phone = Annotated[
    str,
    _matching(
        r"\+?[0-9 ()-]{3,32}", "must be a phone number: digits, spaces, ( ) - and a leading +"
    ),
]
Country = Annotated[str, _matching(r"[A-Z]{2}", "must be an ISO 3166 alpha-2 code such as 'AU'")]
#: A lowercase token, as on the wire: ``home-loan``, ``asset-finance``.
DealType = Annotated[
    str,
    _matching(r"[a-z0-9][a-z0-9_-]{0,63}", "must be a lowercase token such as 'home-loan'"),
]
Sha256 = Annotated[str, _matching(r"[0-9a-f]{64}", "must be a SHA-256 digest in lowercase hex")]
NodeId = Annotated[str, _matching(r"[A-Za-z0-9_-]{43}", "must be a node id (43 characters)")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), PlainText(max_length=200)]
ShortText = Annotated[str, StringConstraints(max_length=200), PlainText(max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=8000), PlainText(multiline=True, max_length=8000)]
#: A URL or a key given with one: one line of text, checked where it is used.
UrlText = Annotated[str, StringConstraints(max_length=2000), PlainText(max_length=2000)]
#: A file name: no path separators or control characters.
FileName = Annotated[
    Name, _matching(r"[^/\\\x00-\x1f\x7f]+", "must be a file name without '/' or '\\'")
]
Role = Literal["admin", "broker"]
ContactRole = Literal["primary", "co-applicant", "other"]
NoteKind = Literal["user", "system", "referral"]
Origin = Literal["local", "referral"]


def _iso_date(value: str) -> str:
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError
        date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date written YYYY-MM-DD") from None
    return value


_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def _timestamp(value: str) -> str:
    try:
        if not _TIMESTAMP.fullmatch(value):
            raise ValueError
        datetime.fromisoformat(value[:-1])  # a real date and time (strptime is 10x slower)
    except ValueError:
        raise ValueError("must be a UTC time written YYYY-MM-DDTHH:MM:SSZ") from None
    return value


IsoDate = Annotated[
    str,
    _matching(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", "must be a date written YYYY-MM-DD", format="date"),
    AfterValidator(_iso_date),
]
Timestamp = Annotated[str, AfterValidator(_timestamp)]

CUSTOM_FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_ .-]{0,63}")
_CUSTOM_FIELD_MESSAGE = (
    "custom field names are 1 to 64 letters, digits, spaces, '_', '.' or '-', starting with a "
    "letter or digit"
)


_LABEL = r"[^;\x00-\x1f\x7f]{1,64}"


def _labels_as_sent(value: Any, info: ValidationInfo) -> Any:
    """The text rule on each label before it is stripped."""
    if isinstance(value, list) and not is_stored(info):
        for label in value:
            problem = text_problem(label) if isinstance(label, str) else None
            if problem is not None:
                raise ValueError(f"label {label!r} {problem}")
    return value


def _labels(value: list[str]) -> list[str]:
    seen: list[str] = []
    for label in value:
        if not re.fullmatch(_LABEL, label):
            raise ValueError(f"label {label!r} must be 1 to 64 characters without ';'")
        if label not in seen:
            seen.append(label)
    if len(seen) > 50:
        raise ValueError("at most 50 labels")
    return seen


def _custom_fields(value: dict[str, str]) -> dict[str, str]:
    """Names are checked; values are stripped and blank ones dropped (blank = not set)."""
    for name in value:
        if not CUSTOM_FIELD_NAME.fullmatch(name.strip(" ")):
            raise ValueError(f"custom field name {name!r}: {_CUSTOM_FIELD_MESSAGE}")
    out = {name.strip(" "): text.strip() for name, text in value.items() if text.strip()}
    if len(out) > 100:
        raise ValueError("at most 100 custom fields")
    return out


Labels = Annotated[
    list[Annotated[str, StringConstraints(strip_whitespace=True), _Documented(_LABEL)]],
    AfterValidator(_labels),
    BeforeValidator(_labels_as_sent),
]
CustomFieldName = Annotated[str, _Documented(CUSTOM_FIELD_NAME.pattern)]
CustomFieldValue = Annotated[str, PlainText(multiline=True, max_length=2000)]
CustomFields = Annotated[dict[CustomFieldName, CustomFieldValue], AfterValidator(_custom_fields)]
