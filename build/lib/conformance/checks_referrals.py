"""Referrals both ways and their status updates (docs/protocol.md sections 9, 13.6,
13.7, 14.3 to 14.5)."""

from __future__ import annotations

from conformance import messages as m
from conformance.listener import Arrival
from conformance.peer import new_id
from conformance.session import Session
from conformance.target import Mismatch
from protocol.errors import ProtocolError
from protocol.messages import ReferralOffer, ReferralStatus
from protocol.offers import check_offer
from protocol.suites import SuiteId


def can_send(s: Session) -> str | None:
    """Why we cannot send referral offers, or None."""
    if not s.active:
        return "no active connection"
    if s.direction not in ("send", "both"):
        return f"the connection's direction ({s.direction}, from our view) does not let us refer"
    return None


def can_receive(s: Session) -> str | None:
    if not s.active:
        return "no active connection"
    if s.direction not in ("receive", "both"):
        return (f"the connection's direction ({s.direction}, from our view) does not let the target "
                "refer to us: make the invitation with direction 'both'")
    return None


async def run(s: Session) -> None:
    hybrid = SuiteId.MLKEM768X25519_CHACHA
    offered = s.target.keys is not None and any(suite is hybrid for suite, _ in s.target.keys.encryption)
    await s.check("an envelope sealed with the hybrid suite opens", "6.1, 6.3",
                  lambda: s.deliver({"connection_id": s.connection_id}, m.CONFIRM, disposition="duplicate",
                                    suite=hybrid),
                  needs=("no active connection" if not s.active else None if offered else "the target offers only the mandatory suite"))
    await s.check("referral offer accepted, receipt verified", "13.6, 9.4", lambda: _offer(s),
                  needs=can_send(s))
    await s.check("the same referral in a new envelope is a duplicate", "9.2, 14.3",
                  lambda: _offer_again(s), needs=can_send(s) or (None if s.sent_referral else "no referral sent"))
    await s.check("referral from the target opens and keeps the sharing rules", "13.6, 14.5",
                  lambda: _from_target(s), needs=can_receive(s))
    mine = None if s.received_referral else "the target sent no referral"
    await s.check("status update to the target, in order", "14.4", lambda: _status_in_order(s), needs=mine)
    await s.check("status updates out of order are held, then applied", "14.4", lambda: _out_of_order(s),
                  needs=mine)
    await s.check("status update with a move the table forbids is an invalid transition", "14.4 row 4",
                  lambda: _invalid_move(s), needs=mine)
    await s.check("status update from the target", "13.7, 14.4", lambda: _status_from_target(s),
                  needs=None if s.sent_referral else "no referral was sent to the target")


async def _offer(s: Session) -> None:
    assert s.connection_id is not None
    referral_id = new_id("rfl")
    await s.deliver(m.offer(s.connection_id, referral_id, s.now()), m.OFFER)
    s.sent_referral = referral_id


async def _offer_again(s: Session) -> None:
    assert s.connection_id is not None and s.sent_referral is not None
    await s.deliver(m.offer(s.connection_id, s.sent_referral, s.now()), m.OFFER, disposition="duplicate")


async def _from_target(s: Session) -> None:
    def is_offer(a: Arrival) -> bool:
        return a.type.value == "referral-offer" and getattr(a.opened.message, "connection_id", None) == s.connection_id

    arrival = await s.ask("send-referral", f"send a referral to '{s.peer.name}' on connection {s.connection_id}",
                          is_offer, {"connection_id": s.connection_id or "", "node_id": s.peer.node_id})
    offer: ReferralOffer = arrival.opened.message  # type: ignore[assignment]
    try:
        check_offer(offer)
    except ProtocolError as exc:
        raise Mismatch(f"the target's offer breaks section 14.5: {exc.code.value}: {exc.message}") from None
    s.received_referral = offer.referral_id


async def _status_in_order(s: Session) -> None:
    assert s.received_referral is not None
    await s.deliver(m.status(s.received_referral, 1, "accepted", s.now()), m.STATUS)


async def _out_of_order(s: Session) -> None:
    assert s.received_referral is not None
    rid = s.received_referral
    await s.deliver(m.status(rid, 3, "won", s.now()), m.STATUS)  # held: 2 is missing
    await s.deliver(m.status(rid, 2, "in-progress", s.now()), m.STATUS)  # applies 2, then 3
    await s.deliver(m.status(rid, 3, "won", s.now()), m.STATUS, disposition="duplicate")


async def _invalid_move(s: Session) -> None:
    assert s.received_referral is not None
    sent = s.envelope(m.status(s.received_referral, 4, "accepted", s.now()), m.STATUS)  # won is final
    await s.refused(sent, "invalid_transition", signed=True)


async def _status_from_target(s: Session) -> None:
    def is_status(a: Arrival) -> bool:
        return a.type.value == "referral-status" and getattr(a.opened.message, "referral_id", None) == s.sent_referral

    await s.ask("update-referral", f"move the referral {s.sent_referral} it received from '{s.peer.name}' "
                "on (accept it)", is_status, {"referral_id": s.sent_referral or "", "node_id": s.peer.node_id})
    seqs = sorted(a.opened.message.seq for a in s.inbox.arrivals
                  if is_status(a) and isinstance(a.opened.message, ReferralStatus))
    if seqs != list(range(1, len(seqs) + 1)):
        raise Mismatch(f"the target's updates have seq {seqs}, not 1, 2, ...")
