"""What the store returns: frozen models of the federation core's rows."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    # Built on first use (``defer_build``): an idle node holds none it has not needed.
    model_config = ConfigDict(frozen=True, defer_build=True)


class Peer(Record):
    node_id: str
    name: str
    base_url: str
    inbox_url: str
    discovery: bytes
    updated_at: str
    retry_attempts: int
    retry_not_before: float
    #: When deliveries to it started failing (epoch seconds), and when the admins were
    #: told (migration 33); None while deliveries go through.
    failing_since: float | None = None
    failing_told_at: str | None = None


class Invitation(Record):
    id: str
    name: str
    state: str
    direction: str
    settings: dict[str, Any]
    created_by: str | None
    created_at: str
    expires_at: str
    used_at: str | None
    connection_id: str | None


class Connection(Record):
    id: str
    peer_node_id: str
    role: Literal["requester", "responder"]
    state: str
    direction: Literal["send", "receive", "both"]
    name: str
    invitation_id: str | None
    target_email: str | None
    requested_by: str | None
    message: str
    settings: dict[str, Any]
    created_at: str
    updated_at: str
    #: Why it ended: the decline's message, the disconnect's reason (ours or the peer's),
    #: or the peer's refusal of our request.
    closing_note: str = ""

    @property
    def may_send(self) -> bool:
        return self.state == "active" and self.direction in ("send", "both")

    @property
    def may_receive(self) -> bool:
        return self.state == "active" and self.direction in ("receive", "both")


class OutboxItem(Record):
    seq: int
    envelope_id: str
    peer_node_id: str
    inbox_url: str
    type: str
    body: bytes
    sha256: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None
    created_at: str
    deadline_at: float
    delivered_at: str | None
    receipt: bytes | None
    subject_kind: str | None
    subject_id: str | None


class InboxItem(Record):
    sender: str
    envelope_id: str
    sha256: str
    type: str
    body: bytes
    inner: bytes
    receipt: bytes
    received_at: str


class Referral(Record):
    local_id: str
    side: Literal["sender", "receiver"]
    peer_node_id: str
    id: str
    connection_id: str
    state: str
    referral_type: str
    deal_id: str | None
    envelope_id: str | None
    offer: dict[str, Any]
    last_seq: int
    created_at: str
    updated_at: str


class ReferralEvent(Record):
    side: str
    peer_node_id: str
    referral_id: str
    seq: int
    status: str
    stage: str | None
    reason: str | None
    at: str
    applied: bool


def from_row(model: type[Record], row: Any) -> Any:
    """A record from a row of our own tables: their column types are the record's field
    types (JSON columns and the 0/1 of ``applied`` aside), so it is built without being
    validated again."""
    data = dict(row)
    for key in ("settings", "offer"):
        if key in data and isinstance(data[key], str):
            data[key] = json.loads(data[key])
    if "applied" in data:
        data["applied"] = bool(data["applied"])
    return model.model_construct(**data)
