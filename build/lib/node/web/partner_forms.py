"""The checks the partner forms share (admin's and the portal's): each field on its own,
with a sentence a person understands, keyed by the form field's name."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from node.crm.fields import Email, Name, Phone

_RULES: dict[str, tuple[Any, str]] = {
    "name": (TypeAdapter(Name), "must be one line of text, up to 200 characters"),
    "email": (TypeAdapter(Email), "Enter an e-mail address, like name@example.com"),
    "phone": (TypeAdapter(Phone), "Enter a phone number: digits, spaces, ( ) - and a leading +"),
}


def field_problems(values: dict[str, tuple[str, str, str]]) -> dict[str, str]:
    """``values``: form field -> (kind: name, email or phone; its label; the value).
    Every field's problem: missing, or not of its kind."""
    errors: dict[str, str] = {}
    for field, (kind, label, value) in values.items():
        if not value.strip():
            errors[field] = f"Enter the {label[0].lower() + label[1:]}"
            continue
        adapter, message = _RULES[kind]
        try:
            adapter.validate_python(value.strip())
        except ValidationError:
            errors[field] = message if kind != "name" else f"The {label.lower()} {message}"
    return errors
