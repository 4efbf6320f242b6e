"""Per-connection settings: where inbound referrals land (Salestrekker inbound, Blitz
referral settings) and what outbound referrals may carry (Salestrekker outbound).

Stored as JSON in ``connections.settings``: ``{"inbound": {...}, "outbound": {...}}``.
"""

from __future__ import annotations

import json
import sqlite3
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from node.base.inputs import STORED
from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.fields import Id, ShortText
from node.storage import store
from protocol.errors import LocalProtocolError
from protocol.models import Token
from protocol.offers import REQUIRED_FIELDS, SHAREABLE_FIELDS
from protocol.wire import ErrorCode

__all__ = ["REQUIRED_FIELDS", "SHAREABLE_FIELDS", "ConnectionSettings"]


ShareableField = Literal[
    "deal.title", "deal.deal_type", "deal.amount", "deal.summary", "owner", "contacts.first_name",
    "contacts.last_name", "contacts.email", "contacts.phone", "contacts.address", "contacts.date_of_birth",
]


class Settings(BaseModel):
    # Built on first use (``defer_build``): an idle node holds none it has not needed.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Assignment(Settings):
    """Who owns a new inbound deal.

    - ``match_owner``: the referrer's deal owner when a local active user has that email,
      otherwise the workflow owner (Salestrekker's rule);
    - ``round_robin``: in turn among ``user_ids`` (Blitz auto-assign);
    - ``fixed``: always ``user_id``.
    """

    rule: Literal["match_owner", "round_robin", "fixed"] = "match_owner"
    user_ids: list[Id] = Field(default_factory=list, max_length=100)
    user_id: Id | None = None


class InboundSettings(Settings):
    workflow_id: Id | None = None
    stage_id: Id | None = None
    folder: ShortText = ""
    source: ShortText = Field(default="", description="Lead source; empty: 'Referral from <peer>'.")
    assignment: Assignment = Field(default_factory=Assignment)  # made when used: no model is built at import


class OutboundSettings(Settings):
    name: ShortText = ""
    workflow_ids: list[Id] = Field(default_factory=list, description="Workflows it may be used from; empty: all.")
    referral_type: Token | None = None
    allowed_fields: list[ShareableField] = Field(default_factory=lambda: list(SHAREABLE_FIELDS))


class ConnectionSettings(Settings):
    inbound: InboundSettings = Field(default_factory=InboundSettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)


def parse_settings(raw: dict[str, Any]) -> ConnectionSettings:
    """Settings as stored. Older or partial documents get defaults."""
    return _parse_settings(json.dumps(raw or {}, sort_keys=True))


@lru_cache(maxsize=256)
def _parse_settings(text: str) -> ConnectionSettings:
    # Cached by content: every inbound referral reads its connection's settings.
    raw = json.loads(text)
    try:
        return ConnectionSettings.model_validate(raw, context=STORED)
    except ValidationError:
        # An invitation may carry only inbound settings at the top level.
        return ConnectionSettings(inbound=InboundSettings.model_validate(raw, context=STORED))


def merge_settings(current: ConnectionSettings, change: ConnectionSettings) -> ConnectionSettings:
    """``current`` with what ``change`` names, and nothing else (JSON merge-patch style:
    objects merge field by field, lists and values replace). A field the caller did not
    send keeps its value: sending only ``{"inbound": {"folder": "x"}}`` must not re-open
    the outbound side's list of what a referral may carry."""

    def merge(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in given.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    merged = merge(current.model_dump(mode="json"), change.model_dump(mode="json", exclude_unset=True))
    return ConnectionSettings.model_validate(merged)


def check_settings(conn: sqlite3.Connection, settings: ConnectionSettings) -> None:
    """Every id must exist here, and the stage must belong to the workflow."""
    inbound = settings.inbound
    if inbound.workflow_id is not None:
        workflow = crm.get_workflow(conn, inbound.workflow_id, field="inbound.workflow_id")
        if inbound.stage_id is not None and all(s.id != inbound.stage_id for s in workflow.stages):
            raise CrmError("invalid", f"stage {inbound.stage_id!r} is not in workflow {workflow.name!r}",
                           "inbound.stage_id")
    elif inbound.stage_id is not None:
        raise CrmError("invalid", "a stage needs its workflow_id", "inbound.stage_id")
    rule = inbound.assignment
    if rule.rule == "fixed":
        if rule.user_id is None:
            raise CrmError("invalid", "the fixed rule needs user_id", "inbound.assignment.user_id")
        crm.get_user(conn, rule.user_id)
    if rule.rule == "round_robin":
        if not rule.user_ids:
            raise CrmError("invalid", "round robin needs user_ids", "inbound.assignment.user_ids")
        for uid in rule.user_ids:
            crm.get_user(conn, uid)
    for wid in settings.outbound.workflow_ids:
        crm.get_workflow(conn, wid, field="outbound.workflow_ids")


def update_settings(conn: sqlite3.Connection, connection_id: str, change: ConnectionSettings, *,
                    now: str) -> ConnectionSettings:
    """Apply ``change`` to a connection's settings (:func:`merge_settings`), check them
    and store them; the settings now in force. The admin API's PATCH and the console's
    settings forms both come here."""
    connection = store.get_connection(conn, connection_id)
    if connection is None:
        raise LocalProtocolError(ErrorCode.UNKNOWN_SUBJECT, f"no connection {connection_id}")
    settings = merge_settings(parse_settings(connection.settings), change)
    check_settings(conn, settings)
    store.update_connection(conn, connection_id, now=now, settings=settings.model_dump(mode="json"))
    return settings
