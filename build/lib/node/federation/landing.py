"""Where an inbound referral lands in the local CRM: the connection's workflow and stage,
an owner by its assignment rule, its folder and source, new contacts, and a note that
carries the referrer's message. Runs inside the inbox transaction, so the receipt is
signed only once the deal is durably filed."""

from __future__ import annotations

import sqlite3

from pydantic import ValidationError

from node.base.when import when
from node.crm import store as crm
from node.crm.errors import CrmError
from node.crm.models import Address, ContactIn, DealIn, DealReferral, WorkflowIn, note_text
from node.federation.connection_settings import InboundSettings, parse_settings
from node.federation.outbox import TxContext
from node.federation.sharing import CONSENT_WORDS, type_words
from node.storage.records import Connection
from protocol.errors import RemoteProtocolError
from protocol.messages import ReferralOffer
from protocol.wire import ErrorCode

DEFAULT_WORKFLOW = "Inbound referrals"
DEFAULT_STAGES = ["New referral", "Contacted", "In progress", "Settled"]


def land_offer(conn: sqlite3.Connection, ctx: TxContext, connection: Connection, offer: ReferralOffer) -> str:
    """File ``offer`` as a new deal and return the deal's id.

    An offer our CRM cannot take (a value its rules refuse) is refused as ``malformed``:
    a permanent answer, so the sender does not retry it and hold up its queue to us."""
    try:
        return _land(conn, ctx, connection, offer)
    except (CrmError, ValidationError) as exc:
        message = exc.message if isinstance(exc, CrmError) else str(exc.errors()[0]["msg"])
        where = exc.field if isinstance(exc, CrmError) else ".".join(str(p) for p in exc.errors()[0]["loc"])
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"this node cannot file the referral: {where}: {message}") from None


def _land(conn: sqlite3.Connection, ctx: TxContext, connection: Connection, offer: ReferralOffer) -> str:
    inbound = parse_settings(connection.settings).inbound
    workflow_id, stage_id, workflow_owner = _placement(conn, ctx, inbound)
    owner = _owner(conn, connection, inbound, workflow_owner, offer)
    contacts = [
        (
            ContactIn(
                first_name=profile.first_name,
                last_name=profile.last_name,
                email=profile.email,
                phone=profile.phone,
                address=profile.address.model_dump() if profile.address else Address(),
                date_of_birth=profile.date_of_birth,
            ),
            profile.role,
        )
        for profile in offer.contacts
    ]
    deal = DealIn(
        title=offer.deal.title,
        deal_type=offer.deal.deal_type or offer.referral_type,
        amount=offer.deal.amount,
        currency=offer.deal.currency,
        workflow_id=workflow_id,
        stage_id=stage_id,
        owner_user_id=owner,
        folder=inbound.folder,
        source=inbound.source or f"Referral from {connection.name}",
        summary=offer.deal.summary or "",
    )
    lines = [
        f"Referral received from {connection.name} ({type_words(offer.referral_type).lower()}).",
        f"Referring agent: {offer.referring_agent.name} <{offer.referring_agent.email}>.",
        f"Client consent: {CONSENT_WORDS.get(offer.consent.method, offer.consent.method)}, "
        f"{when(offer.consent.consented_at, ctx.config.zone)}, privacy disclosure {offer.consent.disclosure_version}.",
    ]
    if offer.message:
        lines.append(f"Message: {offer.message}")
    return crm.file_referral(
        conn,
        deal,
        contacts,
        # both ids are already checked: the peer's by its signature, the referral's by the offer's model
        referral=DealReferral.model_construct(peer_node_id=connection.peer_node_id, referral_id=offer.referral_id),
        note=note_text("\n".join(lines)),
        now=ctx.now,
    )


def _placement(conn: sqlite3.Connection, ctx: TxContext, inbound: InboundSettings) -> tuple[str, str, str]:
    """(workflow, stage, workflow owner) for a new referral: the connection's choice, else
    the default inbound workflow (made on first use)."""
    if inbound.workflow_id is not None:
        chosen = crm.placement(conn, workflow_id=inbound.workflow_id, stage_id=inbound.stage_id)
        if chosen is not None:
            return chosen
        # the chosen workflow is gone: file it in the default one rather than lose it
    existing = crm.placement(conn, name=DEFAULT_WORKFLOW)
    if existing is not None:
        return existing
    admin = next((u for u in crm.list_users(conn, active_only=True) if u.role == "admin"), None)
    if admin is None:
        raise RuntimeError("no active admin to own the inbound workflow")
    workflow = crm.create_workflow(
        conn, WorkflowIn(name=DEFAULT_WORKFLOW, owner_user_id=admin.id, stage_names=DEFAULT_STAGES), now=ctx.now
    )
    return workflow.id, workflow.stages[0].id, workflow.owner_user_id


def _owner(conn: sqlite3.Connection, connection: Connection, inbound: InboundSettings, workflow_owner: str,
           offer: ReferralOffer) -> str:
    rule = inbound.assignment
    if rule.rule == "fixed" and rule.user_id is not None and crm.active_user_ids(conn, [rule.user_id]):
        return rule.user_id
    if rule.rule == "round_robin":
        active = crm.active_user_ids(conn, list(rule.user_ids))
        pool = [uid for uid in rule.user_ids if uid in active]
        if pool:
            row = conn.execute("SELECT next_index FROM assignment_cursor WHERE connection_id = ?",
                               (connection.id,)).fetchone()
            index = (row[0] if row else 0) % len(pool)
            conn.execute(
                "INSERT INTO assignment_cursor (connection_id, next_index) VALUES (?, ?)"
                " ON CONFLICT (connection_id) DO UPDATE SET next_index = excluded.next_index",
                (connection.id, index + 1),
            )
            return pool[index]
    if rule.rule == "match_owner" and offer.owner is not None:
        user = crm.find_user_by_email(conn, offer.owner.email)
        if user is not None and user.active:
            return user.id
    return workflow_owner
