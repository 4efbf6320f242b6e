"""Lifecycles as explicit transition tables, h11-style: ``{(role, state, event): next}``.

States are string enums, so they can be stored as TEXT. A pair missing from a table is
not allowed, and :func:`transition` raises ``invalid_transition``.
"""

from __future__ import annotations

from enum import StrEnum

from protocol.errors import LocalProtocolError
from protocol.wire import ErrorCode

# --- the connection handshake ----------------------------------------------------------


class Role(StrEnum):
    #: The node that was invited (or asked) and answers the connection request.
    RESPONDER = "responder"
    #: The node that sends the connection request.
    REQUESTER = "requester"


class ConnState(StrEnum):
    START = "start"  # nothing recorded yet
    INVITED = "invited"  # responder: an invitation is out (the invitation table holds it)
    REQUESTED = "requested"  # a connection-request was sent / received
    RESPONDED = "responded"  # responder: accepted and sent connection-accept; awaits confirm
    ACTIVE = "active"
    REFUSED = "refused"
    EXPIRED = "expired"
    DISCONNECTED = "disconnected"


class ConnEvent(StrEnum):
    SEND_REQUEST = "send_request"
    RECEIVE_REQUEST = "receive_request"
    ACCEPT = "accept"  # responder decides to accept (automatic for a valid invitation)
    REFUSE = "refuse"  # responder decides to refuse
    RECEIVE_ACCEPT = "receive_accept"  # requester: it sends connection-confirm and is active
    RECEIVE_REFUSE = "receive_refuse"
    RECEIVE_CONFIRM = "receive_confirm"
    EXPIRE = "expire"
    DISCONNECT = "disconnect"
    RECEIVE_DISCONNECT = "receive_disconnect"


R, Q = Role.RESPONDER, Role.REQUESTER
S, E = ConnState, ConnEvent

CONNECTION_TRANSITIONS: dict[tuple[Role, ConnState, ConnEvent], ConnState] = {
    # responder
    (R, S.START, E.RECEIVE_REQUEST): S.REQUESTED,
    (R, S.INVITED, E.RECEIVE_REQUEST): S.REQUESTED,
    (R, S.INVITED, E.EXPIRE): S.EXPIRED,
    (R, S.REQUESTED, E.ACCEPT): S.RESPONDED,
    (R, S.REQUESTED, E.REFUSE): S.REFUSED,
    (R, S.REQUESTED, E.EXPIRE): S.EXPIRED,
    # the requester may withdraw a request still awaiting the responder's admin
    (R, S.REQUESTED, E.RECEIVE_DISCONNECT): S.DISCONNECTED,
    (R, S.RESPONDED, E.RECEIVE_CONFIRM): S.ACTIVE,
    (R, S.RESPONDED, E.DISCONNECT): S.DISCONNECTED,
    (R, S.RESPONDED, E.RECEIVE_DISCONNECT): S.DISCONNECTED,
    (R, S.ACTIVE, E.DISCONNECT): S.DISCONNECTED,
    (R, S.ACTIVE, E.RECEIVE_DISCONNECT): S.DISCONNECTED,
    # requester
    (Q, S.START, E.SEND_REQUEST): S.REQUESTED,
    (Q, S.REQUESTED, E.RECEIVE_ACCEPT): S.ACTIVE,
    (Q, S.REQUESTED, E.RECEIVE_REFUSE): S.REFUSED,
    (Q, S.REQUESTED, E.EXPIRE): S.EXPIRED,
    (Q, S.REQUESTED, E.DISCONNECT): S.DISCONNECTED,
    (Q, S.ACTIVE, E.DISCONNECT): S.DISCONNECTED,
    (Q, S.ACTIVE, E.RECEIVE_DISCONNECT): S.DISCONNECTED,
}


def connection_next(role: Role, state: ConnState, event: ConnEvent) -> ConnState:
    try:
        return CONNECTION_TRANSITIONS[(role, state, event)]
    except KeyError:
        raise LocalProtocolError(
            ErrorCode.INVALID_TRANSITION, f"a {role} connection that is {state} cannot {event}"
        ) from None


# --- the referral lifecycle ------------------------------------------------------------


class Side(StrEnum):
    SENDER = "sender"
    RECEIVER = "receiver"


class ReferralState(StrEnum):
    """Names follow HL7 FHIR Task.status where one fits (received, accepted, in-progress)."""

    DEFERRED = "deferred"  # sender: waits for an event before it is sent
    CANCELLED = "cancelled"  # sender: a deferred referral cancelled before sending
    SENT = "sent"  # sender: in the outbox
    DELIVERED = "delivered"  # sender: the receiver's receipt is stored
    FAILED = "failed"  # sender: delivery gave up at its deadline (may be retried)
    RECEIVED = "received"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    IN_PROGRESS = "in-progress"
    WON = "won"
    LOST = "lost"
    WITHDRAWN = "withdrawn"


RS = ReferralState

#: Where each status update may lead, from the receiver's point of view. The sender
#: applies the same moves when the updates reach it.
_WORK: dict[ReferralState, frozenset[ReferralState]] = {
    RS.RECEIVED: frozenset({RS.ACCEPTED, RS.DECLINED, RS.WITHDRAWN}),
    RS.ACCEPTED: frozenset({RS.IN_PROGRESS, RS.WON, RS.LOST, RS.WITHDRAWN}),
    RS.IN_PROGRESS: frozenset({RS.IN_PROGRESS, RS.WON, RS.LOST, RS.WITHDRAWN}),
}

REFERRAL_TRANSITIONS: dict[tuple[Side, ReferralState], frozenset[ReferralState]] = {
    (Side.SENDER, RS.DEFERRED): frozenset({RS.SENT, RS.CANCELLED}),
    (Side.SENDER, RS.SENT): frozenset({RS.DELIVERED, RS.FAILED} | {RS.RECEIVED} | _WORK[RS.RECEIVED]),
    # A delivery given up on may still have arrived (only the answer was lost): updates count.
    (Side.SENDER, RS.FAILED): frozenset({RS.SENT, RS.DELIVERED, RS.RECEIVED} | _WORK[RS.RECEIVED]),
    # Status updates can overtake the receipt's bookkeeping, so a delivered referral may
    # jump to any working state; order is enforced by the updates' seq, not here.
    (Side.SENDER, RS.DELIVERED): frozenset({RS.RECEIVED} | _WORK[RS.RECEIVED] | _WORK[RS.ACCEPTED]),
    **{(Side.SENDER, s): nxt for s, nxt in _WORK.items()},
    **{(Side.RECEIVER, s): nxt for s, nxt in _WORK.items()},
}


def referral_next(side: Side, state: ReferralState, new: ReferralState) -> ReferralState:
    allowed = REFERRAL_TRANSITIONS.get((side, state), frozenset())
    if new not in allowed:
        raise LocalProtocolError(
            ErrorCode.INVALID_TRANSITION, f"a {side} referral that is {state} cannot become {new}"
        )
    return new


TERMINAL_REFERRAL_STATES = frozenset({RS.CANCELLED, RS.DECLINED, RS.WON, RS.LOST, RS.WITHDRAWN})
