"""The forms of a connection's settings, read into the models the admin API takes
(``node.federation.connection_settings``), so that a page and the API accept exactly the
same settings:

- **inbound** (where their referrals land, Salestrekker's inbound set-up): workflow and
  stage, folder, source and the owner rule; on the invitation form and a connection's page;
- **outbound** (what our referrals to them may be): the workflows they may be referred
  from, the referral type, and the fields they may carry.

A form's fields are named as on the page (``workflow_id``, ``rule``, ``allowed_fields``...);
:func:`form_errors` turns a model's or the CRM's error back into an error by field.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from pydantic import ValidationError

from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.parsing import field_errors
from node.federation.connection_settings import (
    REQUIRED_FIELDS,
    SHAREABLE_FIELDS,
    ConnectionSettings,
)
from node.web.views import View

#: Directions, seen from us, as a person reads them.
DIRECTIONS: list[tuple[str, str]] = [
    ("receive", "They send us referrals"),
    ("send", "We send them referrals"),
    ("both", "Both ways"),
]
DIRECTION_WORDS = dict(DIRECTIONS)

RULES: list[tuple[str, str]] = [
    ("match_owner", "The referrer's deal owner, when they have an account here; else the workflow's owner"),
    ("round_robin", "In turn among the people chosen below"),
    ("fixed", "Always the same person"),
]
RULE_WORDS = dict(RULES)

#: What each shareable field is, in words.
FIELD_WORDS: dict[str, str] = {
    "deal.title": "Deal title",
    "deal.deal_type": "Deal type",
    "deal.amount": "Amount and currency",
    "deal.summary": "Deal summary",
    "owner": "Deal owner's name and e-mail",
    "contacts.first_name": "Client's first name",
    "contacts.last_name": "Client's last name",
    "contacts.email": "Client's e-mail",
    "contacts.phone": "Client's phone",
    "contacts.address": "Client's address",
    "contacts.date_of_birth": "Client's date of birth",
}
#: The fields a person may leave out (the rest always travel).
OPTIONAL_FIELDS = [f for f in SHAREABLE_FIELDS if f not in REQUIRED_FIELDS]

#: Field labels, for error messages.
LABELS: dict[str, str] = {
    "name": "Name", "direction": "Direction", "ttl_days": "Expiry", "workflow_id": "Workflow",
    "stage_id": "Stage", "folder": "Folder", "source": "Source", "rule": "Owner rule", "user_id": "Owner",
    "user_ids": "People", "workflow_ids": "Workflows", "referral_type": "Referral type",
    "allowed_fields": "Fields", "message": "Message", "reason": "Reason", "email": "E-mail address",
    "url": "Address", "referral_url": "Referral URL", "referral_key": "Referral key",
}
_RENAMED = {"ttl_s": "ttl_days"}
#: Messages that say what to type, where a model's would quote its rule.
_PLAIN = {"referral_type": "Referral type: use lower-case letters, digits, - and _ only, e.g. mortgage."}


def choices(conn: sqlite3.Connection) -> dict[str, Any]:
    """What the settings forms offer: workflows with their stages, and active users."""
    return {"workflows": crm.list_workflows(conn), "users": crm.list_users(conn, active_only=True)}


def inbound_form(view: View) -> dict[str, Any]:
    """The inbound form, as ``InboundSettings`` takes it."""
    rule = view.value("rule") or "match_owner"
    return {
        "workflow_id": view.value("workflow_id") or None,
        "stage_id": view.value("stage_id") or None,
        "folder": view.value("folder"),
        "source": view.value("source"),
        "assignment": {
            "rule": rule,
            "user_id": (view.value("user_id") or None) if rule == "fixed" else None,
            "user_ids": view.values("user_ids") if rule == "round_robin" else [],
        },
    }


def inbound_problems(view: View) -> dict[str, str]:
    """What the owner rule lacks, in words (before the models say it their way)."""
    rule = view.value("rule") or "match_owner"
    if rule == "fixed" and not view.value("user_id"):
        return {"user_id": "Choose the person who gets every new deal."}
    if rule == "round_robin" and not view.values("user_ids"):
        return {"user_ids": "Tick the people who get new deals in turn."}
    return {}


def outbound_form(view: View) -> dict[str, Any]:
    """The outbound form, as ``OutboundSettings`` takes it (the required fields always)."""
    chosen = set(view.values("allowed_fields")) | set(REQUIRED_FIELDS)
    return {
        "workflow_ids": view.values("workflow_ids"),
        "referral_type": view.value("referral_type") or None,
        "allowed_fields": [f for f in SHAREABLE_FIELDS if f in chosen] + sorted(chosen - set(SHAREABLE_FIELDS)),
    }


#: Every field of the connection forms: those that hold one value, and those that hold several.
SINGLE = ("workflow_id", "stage_id", "folder", "source", "rule", "user_id", "referral_type", "name", "direction",
          "ttl_days", "email", "url", "referral_url", "referral_key", "message", "reason")
MANY = ("user_ids", "workflow_ids", "allowed_fields")


def blank_values(**given: Any) -> dict[str, Any]:
    """Empty forms' values, with ``given`` filled in."""
    return {**{k: "" for k in SINGLE}, **{k: [] for k in MANY}, **given}


def values_of(settings: ConnectionSettings) -> dict[str, Any]:
    """Stored settings as the forms' values."""
    inbound, outbound = settings.inbound, settings.outbound
    return blank_values(**{
        "workflow_id": inbound.workflow_id or "", "stage_id": inbound.stage_id or "",
        "folder": inbound.folder, "source": inbound.source, "rule": inbound.assignment.rule,
        "user_id": inbound.assignment.user_id or "", "user_ids": list(inbound.assignment.user_ids),
        "workflow_ids": list(outbound.workflow_ids), "referral_type": outbound.referral_type or "",
        "allowed_fields": list(outbound.allowed_fields),
    })


#: The fields of each form on a connection's page.
INBOUND = ("workflow_id", "stage_id", "folder", "source", "rule", "user_id", "user_ids")
OUTBOUND = ("workflow_ids", "referral_type", "allowed_fields")


def values_from(view: View, only: tuple[str, ...] = SINGLE + MANY) -> dict[str, Any]:
    """What a form sent (its fields among ``only``), to show it again with its errors."""
    return {k: view.values(k) if k in MANY else view.value(k) for k in only}


def _field_name(path: str | None, fallback: str) -> str:
    parts = [p for p in (path or "").split(".") if p and not p.isdigit()]
    name = parts[-1] if parts else fallback
    name = _RENAMED.get(name, name)
    return name if name in LABELS else fallback


def form_errors(exc: ValidationError | CrmError, fallback: str) -> dict[str, str]:
    """A model's or the CRM's error as ``{form field: message}``; ``fallback`` is the
    field blamed when the error names none the form has."""
    if isinstance(exc, CrmError):
        name = _field_name(exc.field, fallback)
        return {name: f"{LABELS[name]}: {exc.message}"}
    errors: dict[str, str] = {}
    for path, message in field_errors(exc):
        name = _field_name(path, fallback)
        errors.setdefault(name, _PLAIN.get(name) or f"{LABELS[name]} {message}")
    return errors


def placement_words(settings: ConnectionSettings, workflows: list[Any]) -> str:
    """Where inbound referrals land, in words (for people who may only read the settings)."""
    inbound = settings.inbound
    workflow = next((w for w in workflows if w.id == inbound.workflow_id), None)
    if workflow is None:
        return "The “Inbound referrals” workflow (made when the first referral arrives), first stage"
    stage = next((s for s in workflow.stages if s.id == inbound.stage_id), None)
    return f"{workflow.name}, {stage.name if stage else 'first stage'}"
