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
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, StringConstraints


def _matching(pattern: str, message: str) -> AfterValidator:
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


#: An optional text field: a blank string means "none".
Blank = BeforeValidator(_blank_to_none)

Id = Annotated[
    str, _matching(r"[A-Za-z0-9_-]{1,64}", "must be an id: 1 to 64 letters, digits, '_' or '-'")
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
    _matching(r"[^@\s]{1,64}@[^@\s]{1,253}", "must be an email address"),
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
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ShortText = Annotated[str, StringConstraints(max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=8000)]
#: A file name: no path separators or control characters.
FileName = Annotated[
    Name, _matching(r"[^/\\\x00-\x1f]+", "must be a file name without '/' or '\\'")
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


IsoDate = Annotated[str, AfterValidator(_iso_date)]
Timestamp = Annotated[str, AfterValidator(_timestamp)]

_LABEL = re.compile(r"[^;\x00-\x1f]{1,64}")
CUSTOM_FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_ .-]{0,63}")


def _labels(value: list[str]) -> list[str]:
    seen: list[str] = []
    for label in value:
        if not _LABEL.fullmatch(label):
            raise ValueError(f"label {label!r} must be 1 to 64 characters without ';'")
        if label not in seen:
            seen.append(label)
    if len(seen) > 50:
        raise ValueError("at most 50 labels")
    return seen


def _custom_fields(value: dict[str, str]) -> dict[str, str]:
    """Names are checked; values are stripped and blank ones dropped (blank = not set)."""
    out: dict[str, str] = {}
    for name, text in value.items():
        if not CUSTOM_FIELD_NAME.fullmatch(name):
            raise ValueError(
                f"custom field name {name!r} must be 1 to 64 letters, digits, spaces, '_', '.' "
                "or '-', starting with a letter or digit"
            )
        if len(text) > 2000:
            raise ValueError(f"custom field {name!r} must be at most 2000 characters")
        if text.strip():
            out[name] = text.strip()
    if len(out) > 100:
        raise ValueError("at most 100 custom fields")
    return out


Labels = Annotated[
    list[Annotated[str, StringConstraints(strip_whitespace=True)]], AfterValidator(_labels)
]
CustomFields = Annotated[dict[str, str], AfterValidator(_custom_fields)]
