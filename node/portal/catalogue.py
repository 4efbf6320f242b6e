"""The fact-find catalogue: versioned data (``factfind_v<N>.json``), never code.

A catalogue has sections (one page each for the client), each of subsections, each of
fields. A subsection with ``repeat`` is a group of up to that many rows (dependants,
previous addresses, previous jobs, assets...): a row left empty is no row, and a row with
anything in it needs its required fields. A section may hold the rule ``address_years``:
the current address and the previous ones must cover that many years.

A flow names the catalogue version it was made with and keeps the sections and
subsections it chose; a client's answers are checked against that version, so a newer
catalogue never changes what an old flow asks. Form field names are
``<subsection>-<field>`` or ``<subsection>-<row>-<field>`` (row from 1): safe as HTML ids.

Checking a field by its type (:func:`check_value`) returns the clean value or raises
:class:`FieldProblem` with a sentence for the person filling it in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

from node.base.when import day

HERE = Path(__file__).parent
#: The catalogue new flows are made with.
CURRENT_VERSION = 1
MAX_TEXT = 200
MAX_TEXTAREA = 2000
MAX_MONEY = Decimal("1000000000000")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{6,20}$")
_POSTCODE = re.compile(r"^[0-9]{4}$")


class FieldProblem(ValueError):
    """A value that does not fit its field; the message is for the client."""


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    type: str
    required: bool
    options: tuple[str, ...]
    hint: str
    max: int | None


@dataclass(frozen=True)
class Subsection:
    key: str
    title: str
    fields: tuple[Field, ...]
    repeat: int  # 0: one set of fields
    hint: str


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    subsections: tuple[Subsection, ...]
    address_years: int

    def subsection(self, key: str) -> Subsection | None:
        return next((s for s in self.subsections if s.key == key), None)


@dataclass(frozen=True)
class Catalogue:
    version: int
    loan_types: tuple[str, ...]
    sections: tuple[Section, ...]

    def section(self, key: str) -> Section | None:
        return next((s for s in self.sections if s.key == key), None)


@cache
def catalogue(version: int = CURRENT_VERSION) -> Catalogue:
    """The catalogue of that version (``ValueError`` for one that does not exist)."""
    path = HERE / f"factfind_v{int(version)}.json"
    if not path.is_file():
        raise ValueError(f"no fact-find catalogue version {version}")
    data = json.loads(path.read_text(encoding="utf-8"))
    sections = tuple(
        Section(s["key"], s["title"], tuple(
            Subsection(sub["key"], sub["title"], tuple(
                Field(f["key"], f["label"], f["type"], bool(f.get("required")), tuple(f.get("options", ())),
                      f.get("hint", ""), f.get("max"))
                for f in sub["fields"]), int(sub.get("repeat", 0)), sub.get("hint", ""))
            for sub in s["subsections"]), int(s.get("address_years", 0)))
        for s in data["sections"])
    return Catalogue(int(data["version"]), tuple(data["loan_types"]), sections)


def field_name(sub: Subsection, field: Field, row: int | None = None) -> str:
    return f"{sub.key}-{row}-{field.key}" if row is not None else f"{sub.key}-{field.key}"


def check_value(field: Field, raw: str) -> str:
    """The clean value of one filled-in field, or :class:`FieldProblem`."""
    value = raw.strip()
    kind = field.type
    if kind == "textarea":
        if len(value) > MAX_TEXTAREA:
            raise FieldProblem(f"{field.label} must be {MAX_TEXTAREA:,} characters or fewer")
        return value
    if "\n" in value or len(value) > MAX_TEXT:
        raise FieldProblem(f"{field.label} must be one line of {MAX_TEXT} characters or fewer")
    if kind == "text":
        return value
    if kind == "email":
        if not _EMAIL.match(value):
            raise FieldProblem(f"Enter {field.label.lower()} in the right form, like name@example.com")
        return value
    if kind == "phone":
        if not _PHONE.match(value) or sum(c.isdigit() for c in value) < 6:
            raise FieldProblem(f"Enter {field.label.lower()} using digits, like 0412 345 678")
        return value
    if kind == "postcode":
        if not _POSTCODE.match(value):
            raise FieldProblem(f"{field.label} must be 4 digits")
        return value
    if kind == "date":
        try:
            when = date.fromisoformat(value)
        except ValueError:
            raise FieldProblem(f"{field.label} must be a real date, like 1985-03-27") from None
        if when.year < 1900 or when > date.today():
            raise FieldProblem(f"{field.label} must be a date in the past")
        return when.isoformat()
    if kind == "integer":
        if not value.isdigit() or len(value) > 4:
            raise FieldProblem(f"{field.label} must be a whole number, like 2")
        if field.max is not None and int(value) > field.max:
            raise FieldProblem(f"{field.label} must be {field.max} or less")
        return str(int(value))
    if kind == "money":
        cleaned = value.replace(",", "").removeprefix("$").strip()
        try:
            amount = Decimal(cleaned)
        except InvalidOperation:
            raise FieldProblem(f"{field.label} must be an amount in dollars, like 1,250 or 1250.50") from None
        if not amount.is_finite() or amount < 0 or amount >= MAX_MONEY or amount != round(amount, 2):
            raise FieldProblem(f"{field.label} must be an amount in dollars, like 1,250 or 1250.50")
        return f"{amount:.2f}"
    if kind in ("select", "yesno"):
        options = field.options if kind == "select" else ("Yes", "No")
        if value not in options:
            raise FieldProblem(f"Choose {field.label.lower()} from the list")
        return value
    raise FieldProblem(f"{field.label} has a type this node does not know")


def _fields(sub: Subsection, form: Any, row: int | None,
            errors: dict[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    # in a repeated subsection a message names its row: "Liabilities 1: Choose type"
    where = f"{sub.title} {row}: " if row is not None else ""
    for field in sub.fields:
        name = field_name(sub, field, row)
        raw = str(form.get(name, "") or "")
        if not raw.strip():
            if field.required:
                errors[name] = where + (f"Enter {field.label.lower()}" if field.type not in ("select", "yesno")
                                        else f"Choose {field.label.lower()}")
            continue
        try:
            values[field.key] = check_value(field, raw)
        except FieldProblem as exc:
            errors[name] = where + str(exc)
    return values


def read_section(section: Section, chosen: list[str], form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A section's answers from its page's form, and the problems by field name. Only
    the subsections the flow ``chosen`` are read."""
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for sub in section.subsections:
        if sub.key not in chosen:
            continue
        if not sub.repeat:
            answers[sub.key] = _fields(sub, form, None, errors)
            continue
        rows = []
        for row in range(1, sub.repeat + 1):
            if not any(str(form.get(field_name(sub, f, row), "") or "").strip() for f in sub.fields):
                continue
            rows.append(_fields(sub, form, row, errors))
        answers[sub.key] = rows
    if section.address_years and not errors:
        _address_years(section, answers, errors)
    return answers, errors


def _address_years(section: Section, answers: dict[str, Any], errors: dict[str, str]) -> None:
    current = answers.get("address", {}).get("years")
    previous = answers.get("previous")
    if current is None or previous is None:
        return
    covered = int(current) + sum(int(r.get("years", 0)) for r in previous)
    if covered < section.address_years:
        sub = section.subsection("previous")
        assert sub is not None
        errors[field_name(sub, sub.fields[0], len(previous) + 1 if len(previous) < sub.repeat else 1)] = (
            f"Add your previous addresses: together with your current one they must cover "
            f"{section.address_years} years")


def form_values(section: Section, saved: dict[str, Any]) -> dict[str, str]:
    """Saved answers as the form's field values (to fill the page in again)."""
    values: dict[str, str] = {}
    for sub in section.subsections:
        got = saved.get(sub.key)
        if sub.repeat:
            for row, found in enumerate(got or [], start=1):
                for field in sub.fields:
                    values[field_name(sub, field, row)] = found.get(field.key, "")
        else:
            for field in sub.fields:
                values[field_name(sub, field)] = (got or {}).get(field.key, "")
    return values


def readable(section: Section, chosen: list[str], saved: dict[str, Any]) -> list[dict[str, Any]]:
    """A section's answers as people read them: per subsection, rows of (label, value)."""
    out = []
    for sub in section.subsections:
        if sub.key not in chosen:
            continue
        got = saved.get(sub.key)
        rows = (got or []) if sub.repeat else ([got] if got is not None else [])
        out.append({"key": sub.key, "title": sub.title, "repeat": bool(sub.repeat),
                    "rows": [[(f.label, _shown(f, (r or {}).get(f.key, ""))) for f in sub.fields] for r in rows]})
    return out


def _shown(field: Field, value: Any) -> Any:
    """A value as people read it: a date as ``27 Feb 1990``, an amount as ``$95,000.00``,
    the rest as given."""
    if field.type == "money" and isinstance(value, str) and value:
        try:
            return f"${Decimal(value):,.2f}"
        except InvalidOperation:
            return value
    if field.type == "date" and isinstance(value, str) and value:
        try:
            return day(date.fromisoformat(value))
        except ValueError:
            return value
    return value
