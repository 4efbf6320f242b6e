"""A form's errors in the GOV.UK pattern: one message per field, beginning with the
field's label, keyed by the form field's name (the error summary links to ``#f-<name>``).

The CRM's models and store speak of their own fields (``owner_user_id``,
``address.line1``, ``contacts.0.contact_id``); a form maps them to its field names with
``aliases`` (a model field, or the first part of a dotted one, to a form field).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from node.crm.errors import CrmError
from node.crm.parsing import field_errors


def _form_field(field: str, aliases: Mapping[str, str], fallback: str) -> str:
    if field in aliases:
        return aliases[field]
    head = field.split(".")[0]
    return aliases.get(head, head if head and head != "(input)" else fallback)


def _sentence(label: str, message: str) -> str:
    if message == "is required" or "at least 1 character" in message:
        return f"Enter the {label[0].lower() + label[1:]}"
    return f"{label} {message}"


def validation_errors(exc: ValidationError, labels: Mapping[str, str], *, aliases: Mapping[str, str] = {},
                      messages: Mapping[str, str] = {}, fallback: str) -> dict[str, str]:
    """Every field's first problem, as a sentence: the form's own (``messages``, for
    fields whose rule is better said in plain words), else the model's after the label."""
    errors: dict[str, str] = {}
    for field, message in field_errors(exc):
        name = _form_field(field, aliases, fallback)
        name = name if name in labels else fallback
        errors.setdefault(name, messages.get(name) or _sentence(labels[name], message))
    return errors


def crm_errors(exc: CrmError, labels: Mapping[str, str], *, aliases: Mapping[str, str] = {},
               messages: Mapping[str, str] = {}, fallback: str) -> dict[str, str]:
    """A store's refusal, on the field it names, in the form's own words for that field
    (``messages``) where the store's would name ids; else the store's, as a sentence."""
    name = _form_field(exc.field or "", aliases, fallback)
    name = name if name in labels else fallback
    if name in messages:
        return {name: messages[name]}
    prefix = f"{exc.field}: " if exc.field else ""
    if prefix and exc.message.startswith(prefix):  # a model's check, as ``parse`` words it
        message = exc.message.removeprefix(prefix).split(" (and ")[0]
        return {name: _sentence(labels[name], message)}
    return {name: exc.message[:1].upper() + exc.message[1:]}


def in_order(errors: Mapping[str, str], fields: Mapping[str, str]) -> dict[str, str]:
    """The errors in the order of the form's fields (``fields``), as the summary lists them."""
    return {**{name: errors[name] for name in fields if name in errors}, **errors}
