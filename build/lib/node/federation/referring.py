"""Referring a deal from the CRM: what the user chose to share, the client's consent, the
referring agent, notes on both sides; deferred referrals that wait for a stage; and the
closed loop (the receiver's stage moves and outcomes flow back as status updates).

Everything here runs inside one transaction: a refusal leaves nothing behind, and
nothing leaves the node unless the whole referral was recorded.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from node.base.errors import ApiError
from node.base.ids import new_id
from node.base.inputs import STORED, NotNull, PlainText, required_in_document
from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.fields import Id, LongText, Name
from node.crm.models import Deal, NoteIn, Stage, User, note_text
from node.federation import referrals
from node.federation.connection_settings import (
    REQUIRED_FIELDS,
    SHAREABLE_FIELDS,
    ShareableField,
    parse_settings,
)
from node.federation.outbox import TxContext
from node.federation.sharing import FIELD_LABELS, type_words
from node.storage import store
from node.storage.records import Referral
from protocol.encoding import b64u_encode
from protocol.messages import Address, Consent, ContactProfile, DealSummary, Person, ReferralOffer
from protocol.models import Token, format_ts
from protocol.states import ReferralState


class In(BaseModel):
    # Built on first use (``defer_build``): an idle node holds none it has not needed.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


#: The privacy disclosure's exact text: only its SHA-256 is kept and sent.
DisclosureText = Annotated[
    str, StringConstraints(min_length=1, max_length=200_000), PlainText(multiline=True, max_length=200_000)
]


class ConsentIn(In):
    """The client's consent, as the user records it before referring."""

    contact_ids: list[Id] = Field(min_length=1, description="Which of the deal's contacts consented.")
    method: Literal["verbal", "written", "electronic"]
    disclosure_version: Name = Field(
                                    description="The privacy disclosure version the client was shown.")
    disclosure_text: DisclosureText = Field(
                                 description="Its exact text; only its SHA-256 is kept and sent.")
    consented_at: datetime | None = None


class ReferDealIn(In):
    model_config = ConfigDict(json_schema_extra=required_in_document("consent"))

    connection_id: Id
    referring_agent_user_id: Id | None = Field(
        default=None, description="Who gets the commission credit: chosen on purpose, so required when an admin"
        " refers; a broker who leaves it out is the agent.")
    referral_type: Token | None = None
    shared_fields: list[ShareableField] | None = Field(default=None,
                                                       description="Omit for everything the connection allows.")
    message: LongText = ""
    #: Required: absent, the answer is consent_required (not a bare "missing").
    consent: Annotated[ConsentIn | None, NotNull()] = None
    when_stage_id: Id | None = Field(default=None, description="Defer: send when the deal reaches this stage.")
    again: bool = Field(default=False, description="Refer the deal to this connection again although an earlier"
                        " referral of it there is still live (sent, delivered, accepted, in progress) or waiting.")


def _fail(code: str, message: str, field: str, status: int = 400) -> ApiError:
    return ApiError(status, code, message, field=field)


@dataclass(frozen=True)
class Checked:
    """A referral that passed every rule: the offer exactly as it would travel, and the
    stage it waits for when deferred."""

    deal: Deal
    offer: ReferralOffer
    connection_name: str
    stage: Stage | None


def check_referral(conn: sqlite3.Connection, ctx: TxContext, deal_id: str, body: ReferDealIn,
                   actor: User) -> Checked:
    """Every rule of :func:`refer_deal`, writing nothing: the console's preview shows what
    this returns, and the final send checks it all again."""
    deal = crm.get_deal(conn, deal_id)
    offer, name = build_offer(conn, ctx, deal, body, actor)  # validates everything, even when deferred
    stage = None
    if body.when_stage_id is not None:
        stage = crm.get_stage(conn, body.when_stage_id, field="when_stage_id")
        if stage.workflow_id != deal.workflow_id:
            raise _fail("invalid", "that stage is not in the deal's workflow", "when_stage_id")
        if stage.position <= crm.get_stage(conn, deal.stage_id).position:
            raise _fail("invalid", "the deal is already at or past that stage: refer it now instead",
                        "when_stage_id")
    if body.referring_agent_user_id is None and actor.role != "broker":
        raise _fail("invalid", "choose the referring agent, who gets the commission credit: give"
                    " referring_agent_user_id (only a broker referring is the agent by default)",
                    "referring_agent_user_id")
    if not body.again:
        _refuse_second_referral(conn, deal, body.connection_id, name)
    return Checked(deal, offer, name, stage)


def refer_deal(conn: sqlite3.Connection, ctx: TxContext, deal_id: str, body: ReferDealIn, actor: User) -> dict[str, Any]:
    """Refer a deal now, or (with ``when_stage_id``) once it reaches that stage. The
    referring agent is chosen on purpose (only a broker may leave it out, to be it), and
    a deal already live at the connection is not referred there again unless ``again``."""
    checked = check_referral(conn, ctx, deal_id, body, actor)
    deal, stage = checked.deal, checked.stage
    if stage is not None:
        deferred_id = new_id("dfr")
        conn.execute(
            "INSERT INTO deferred_referrals (id, deal_id, stage_id, connection_id, request, actor_user_id, state,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'waiting', ?, ?)",
            (deferred_id, deal.id, stage.id, body.connection_id, body.model_dump_json(), actor.id, ctx.ts, ctx.ts),
        )
        crm.add_note(conn, NoteIn(deal_id=deal.id, body=note_text(f"Referral to {checked.connection_name} will be"
                                                                 f" sent when the deal reaches stage"
                                                                 f" {stage.name!r}.")),
                     now=ctx.now, kind="system")
        return {"deferred": deferred_view(conn, deferred_id)}
    return {"referral": _send(conn, ctx, deal, checked.offer, checked.connection_name, actor).model_dump(mode="json")}


#: A sent referral in one of these states still stands at the receiver.
LIVE_STATES = (ReferralState.SENT, ReferralState.DELIVERED, ReferralState.ACCEPTED, ReferralState.IN_PROGRESS)


def _refuse_second_referral(conn: sqlite3.Connection, deal: Deal, connection_id: str, connection_name: str) -> None:
    """A deal already referred to a connection, and still live there (or waiting for a
    stage), is not referred there again by accident: 409 naming the earlier one."""
    earlier = store.referrals_of_deal(conn, deal.id, connection_id, [s.value for s in LIVE_STATES])
    if earlier:
        r = earlier[-1]
        what, earlier_id = f"referral {r.local_id} ({r.state}, sent {r.created_at})", r.local_id
    else:
        waiting = [d for d in list_deferred(conn, deal.id) if d["connection_id"] == connection_id
                   and d["state"] == "waiting"]
        if not waiting:
            return
        what, earlier_id = f"deferred referral {waiting[-1]['id']} (waiting for a stage)", waiting[-1]["id"]
    raise ApiError(409, "already_referred",
                   f"deal {deal.title!r} is already referred to {connection_name}: {what}. To refer it there"
                   " again, say so with \"again\": true", field="again", earlier=earlier_id)


def build_offer(conn: sqlite3.Connection, ctx: TxContext, deal: Deal, body: ReferDealIn,
                actor: User) -> tuple[ReferralOffer, str]:
    """The offer exactly as it will travel, with only the fields the user chose to share."""
    if body.consent is None:
        raise _fail("consent_required", "record the client's consent (consent.method, consent.disclosure_version,"
                    " consent.disclosure_text, consent.contact_ids) before referring", "consent")
    connection = store.get_connection(conn, body.connection_id)
    if connection is None:
        raise _fail("unknown_subject", f"no connection {body.connection_id}", "connection_id", 404)
    if not connection.may_send:
        raise _fail("not_connected" if connection.state != "active" else "direction_not_allowed",
                    f"connection {connection.name!r} is {connection.state} and cannot send referrals"
                    if connection.state != "active" else f"connection {connection.name!r} only receives referrals",
                    "connection_id", 409)
    outbound = parse_settings(connection.settings).outbound
    if outbound.workflow_ids and deal.workflow_id not in outbound.workflow_ids:
        raise _fail("field_not_allowed", f"connection {connection.name!r} cannot be used from this deal's workflow",
                    "connection_id")
    allowed = set(outbound.allowed_fields) | set(REQUIRED_FIELDS)
    chosen = set(body.shared_fields if body.shared_fields is not None else outbound.allowed_fields)
    chosen |= set(REQUIRED_FIELDS)
    refused = sorted(chosen - allowed)
    if refused:
        raise _fail("field_not_allowed", f"this connection may not share {', '.join(refused)}", "shared_fields")
    deal_contacts = {c.contact_id: c.role for c in deal.contacts}
    if not deal_contacts:
        raise _fail("invalid", "add the client (a contact) to the deal before referring it", "deal_id")
    missing = [cid for cid in body.consent.contact_ids if cid not in deal_contacts]
    if missing:
        raise _fail("invalid", f"consent names contacts that are not on this deal: {', '.join(missing)}",
                    "consent.contact_ids")
    # Only the clients who consented travel.
    deal_contacts = {cid: role for cid, role in deal_contacts.items() if cid in body.consent.contact_ids}
    referral_type = body.referral_type or outbound.referral_type or deal.deal_type or "other"
    agent = crm.get_user(conn, body.referring_agent_user_id) if body.referring_agent_user_id else actor
    contacts = []
    for contact_id, role in deal_contacts.items():
        c = crm.get_contact(conn, contact_id)
        address = None
        if "contacts.address" in chosen and any(c.address.model_dump().values()):
            address = Address(**c.address.model_dump())
        contacts.append(ContactProfile(
            ref=c.id,
            role=role,
            first_name=c.first_name if "contacts.first_name" in chosen else None,
            last_name=c.last_name if "contacts.last_name" in chosen else None,
            email=c.email if "contacts.email" in chosen else None,
            phone=c.phone if "contacts.phone" in chosen else None,
            address=address,
            date_of_birth=c.date_of_birth if "contacts.date_of_birth" in chosen else None,
        ))
    owner = None
    if "owner" in chosen and deal.owner_user_id:
        user = crm.get_user(conn, deal.owner_user_id)
        owner = Person(name=user.name, email=user.email)
    consented_at = body.consent.consented_at or ctx.now
    offer = ReferralOffer(
        referral_id=new_id("rfl"),
        connection_id=connection.id,
        referral_type=referral_type,
        deal=DealSummary(
            title=deal.title,
            deal_type=deal.deal_type if "deal.deal_type" in chosen else None,
            amount=deal.amount if "deal.amount" in chosen else None,
            currency=deal.currency if "deal.amount" in chosen and deal.amount else None,
            summary=(deal.summary or None) if "deal.summary" in chosen else None,
        ),
        contacts=contacts,
        shared_fields=sorted(f for f in chosen if f in SHAREABLE_FIELDS),
        owner=owner,
        referring_agent=Person(name=agent.name, email=agent.email),
        message=body.message,
        consent=Consent(
            contact_refs=body.consent.contact_ids,
            consented_at=format_ts(consented_at),
            method=body.consent.method,
            disclosure_version=body.consent.disclosure_version,
            disclosure_sha256=b64u_encode(hashlib.sha256(body.consent.disclosure_text.encode("utf-8")).digest()),
            recorded_by=Person(name=actor.name, email=actor.email),
        ),
        sent_at=ctx.ts,
    )
    return offer, connection.name


def shared_words(fields: Sequence[str]) -> str:
    """The fields a referral carried as the preview names them, in the preview's order."""
    order = list(FIELD_LABELS)
    ranked = sorted(fields, key=lambda f: order.index(f) if f in order else len(order))
    return ", ".join(FIELD_LABELS.get(f, f).lower() for f in ranked)


def _send(conn: sqlite3.Connection, ctx: TxContext, deal: Deal, offer: ReferralOffer, connection_name: str,
          actor: User) -> Referral:
    referral = referrals.send_offer(conn, ctx, offer, deal_id=deal.id)
    body = (f"Referred to {connection_name} ({type_words(offer.referral_type).lower()}) by {actor.name}; referring agent"
            f" {offer.referring_agent.name}. Shared: {shared_words(offer.shared_fields)}."
            + (f"\nMessage: {offer.message}" if offer.message else ""))
    body = note_text(body)
    crm.add_note(conn, NoteIn(deal_id=deal.id, body=body), now=ctx.now, kind="referral")
    # Each client's own copy is on the contact alone: one on the deal too would show
    # there once more per client.
    for contact in offer.contacts:
        crm.add_note(conn, NoteIn(contact_id=contact.ref, body=f"Deal {deal.title!r}: {body}"), now=ctx.now,
                     kind="referral")
    return referral


# --- deferred referrals ----------------------------------------------------------------


def deferred_view(conn: sqlite3.Connection, deferred_id: str) -> dict[str, Any]:
    """A deferred referral, with ``can_fire``: whether a waiting one can still be sent.
    It cannot once its deal has left the workflow its stage belongs to (``blocked``
    says why, for the person who must then refer the deal by hand or cancel it)."""
    row = conn.execute(
        "SELECT r.*, s.workflow_id AS stage_workflow_id, d.workflow_id AS deal_workflow_id"
        " FROM deferred_referrals r LEFT JOIN stages s ON s.id = r.stage_id JOIN deals d ON d.id = r.deal_id"
        " WHERE r.id = ?",
        (deferred_id,),
    ).fetchone()
    if row is None:
        raise CrmError("not_found", f"no deferred referral {deferred_id!r}")
    data = dict(row)
    data["request"] = json.loads(data["request"])
    stage_workflow, deal_workflow = data.pop("stage_workflow_id"), data.pop("deal_workflow_id")
    waiting = data["state"] == "waiting"
    blocked = None
    if waiting and stage_workflow is None:  # the CRM deletes an empty stage without asking us
        blocked = "its stage was deleted, so the deal can never reach it"
    elif waiting and stage_workflow != deal_workflow:
        blocked = "the deal moved to another workflow, so it can never reach this stage"
    data["can_fire"] = waiting and blocked is None
    data["blocked"] = blocked
    return data


def list_deferred(conn: sqlite3.Connection, deal_id: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT id FROM deferred_referrals" + (" WHERE deal_id = ?" if deal_id else "") + " ORDER BY created_at"
    return [deferred_view(conn, r[0]) for r in conn.execute(sql, (deal_id,) if deal_id else ())]


def cancel_deferred(conn: sqlite3.Connection, ctx: TxContext, deferred_id: str) -> dict[str, Any]:
    current = deferred_view(conn, deferred_id)
    if current["state"] != "waiting":
        raise _fail("invalid_transition", f"deferred referral {deferred_id} was already {current['state']}", "id", 409)
    conn.execute("UPDATE deferred_referrals SET state = 'cancelled', updated_at = ? WHERE id = ?", (ctx.ts, deferred_id))
    crm.add_note(conn, NoteIn(deal_id=current["deal_id"], body="Deferred referral cancelled before it was sent."),
                 now=ctx.now, kind="system")
    return deferred_view(conn, deferred_id)


def on_deal_moved(conn: sqlite3.Connection, ctx: TxContext, before: Deal, after: Deal) -> None:
    """A deal reached a stage: send the referrals waiting for it or for any earlier stage
    of its workflow (a deal may skip stages); and if the deal came from a referral,
    report its progress back to the referrer."""
    waiting = conn.execute(
        "SELECT r.id, r.request, r.actor_user_id FROM deferred_referrals r JOIN stages s ON s.id = r.stage_id"
        " WHERE r.deal_id = ? AND r.state = 'waiting' AND s.workflow_id = ?"
        " AND s.position <= (SELECT position FROM stages WHERE id = ?) ORDER BY r.created_at",
        (after.id, after.workflow_id, after.stage_id),
    ).fetchall()
    for row in waiting:
        request = ReferDealIn.model_validate_json(row["request"], context=STORED).model_copy(update={"when_stage_id": None})
        actor = crm.get_user(conn, row["actor_user_id"])
        offer, name = build_offer(conn, ctx, after, request, actor)
        referral = _send(conn, ctx, after, offer, name, actor)
        conn.execute("UPDATE deferred_referrals SET state = 'sent', referral_local_id = ?, updated_at = ? WHERE id = ?",
                     (referral.local_id, ctx.ts, row["id"]))
    if after.origin == "referral" and after.referral is not None:
        referral = store.get_referral(conn, "receiver", after.referral.peer_node_id, after.referral.referral_id)
        if referral is None:
            return
        stage = crm.get_stage(conn, after.stage_id)
        state = ReferralState(referral.state)
        if state is ReferralState.RECEIVED:
            referrals.report_status(conn, ctx, referral.local_id, ReferralState.ACCEPTED.value, stage=stage.name)
            state = ReferralState.ACCEPTED
        if state in (ReferralState.ACCEPTED, ReferralState.IN_PROGRESS):
            # A stage that means the outcome (e.g. "Settled" = won) reports it, and that is
            # final; any other stage is progress.
            status = {"won": ReferralState.WON, "lost": ReferralState.LOST}.get(stage.outcome or "",
                                                                              ReferralState.IN_PROGRESS)
            referrals.report_status(conn, ctx, referral.local_id, status.value, stage=stage.name)


def recall(conn: sqlite3.Connection, local_id: str) -> None:
    """A sent referral cannot be recalled (Salestrekker: "not reversible")."""
    referral = store.get_referral_local(conn, local_id)
    if referral is None:
        raise _fail("unknown_subject", f"no referral {local_id}", "id", 404)
    raise _fail("invalid_transition",
                "a referral cannot be recalled once it is sent; ask the receiving organisation to decline it",
                "id", 409)
