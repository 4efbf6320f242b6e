"""The transition tables: every listed move works, every other one raises."""

from __future__ import annotations

import itertools

import pytest

from protocol.errors import LocalProtocolError
from protocol.states import (
    CONNECTION_TRANSITIONS,
    REFERRAL_TRANSITIONS,
    TERMINAL_REFERRAL_STATES,
    ConnEvent,
    ConnState,
    ReferralState,
    Role,
    Side,
    connection_next,
    referral_next,
)
from protocol.wire import ErrorCode

CONNECTION_MISSING = [
    key
    for key in itertools.product(Role, ConnState, ConnEvent)
    if key not in CONNECTION_TRANSITIONS
]
REFERRAL_LISTED = [
    (side, state, new) for (side, state), allowed in REFERRAL_TRANSITIONS.items() for new in allowed
]
REFERRAL_MISSING = [
    (side, state, new)
    for side, state, new in itertools.product(Side, ReferralState, ReferralState)
    if new not in REFERRAL_TRANSITIONS.get((side, state), frozenset())
]


@pytest.mark.parametrize(("key", "target"), sorted(CONNECTION_TRANSITIONS.items()))
def test_every_connection_transition_works(
    key: tuple[Role, ConnState, ConnEvent], target: ConnState
) -> None:
    assert connection_next(*key) is target


def test_every_missing_connection_transition_raises() -> None:
    assert len(CONNECTION_MISSING) > 100  # the table is sparse; the check below has work to do
    for role, state, event in CONNECTION_MISSING:
        with pytest.raises(LocalProtocolError) as caught:
            connection_next(role, state, event)
        assert caught.value.code is ErrorCode.INVALID_TRANSITION
        assert str(state) in caught.value.message and str(event) in caught.value.message


@pytest.mark.parametrize(("side", "state", "new"), sorted(REFERRAL_LISTED))
def test_every_referral_transition_works(
    side: Side, state: ReferralState, new: ReferralState
) -> None:
    assert referral_next(side, state, new) is new


def test_every_missing_referral_transition_raises() -> None:
    assert len(REFERRAL_MISSING) > 200
    for side, state, new in REFERRAL_MISSING:
        with pytest.raises(LocalProtocolError) as caught:
            referral_next(side, state, new)
        assert caught.value.code is ErrorCode.INVALID_TRANSITION


def test_terminal_referral_states_lead_nowhere() -> None:
    for side, state in itertools.product(Side, TERMINAL_REFERRAL_STATES):
        assert not REFERRAL_TRANSITIONS.get((side, state))


def test_connection_states_are_stored_as_text() -> None:
    for enum in (Role, ConnState, ConnEvent, Side, ReferralState):
        for member in enum:
            assert enum(str(member)) is member


def _walk(role: Role, start: ConnState, events: list[ConnEvent]) -> list[ConnState]:
    states = [start]
    for event in events:
        states.append(connection_next(role, states[-1], event))
    return states


def test_handshake_by_invitation() -> None:
    E, S = ConnEvent, ConnState
    assert _walk(Role.REQUESTER, S.START, [E.SEND_REQUEST, E.RECEIVE_ACCEPT]) == [
        S.START, S.REQUESTED, S.ACTIVE,
    ]  # fmt: skip
    assert _walk(Role.RESPONDER, S.INVITED, [E.RECEIVE_REQUEST, E.ACCEPT, E.RECEIVE_CONFIRM]) == [
        S.INVITED, S.REQUESTED, S.RESPONDED, S.ACTIVE,
    ]  # fmt: skip


def test_handshake_by_request_refused() -> None:
    E, S = ConnEvent, ConnState
    assert _walk(Role.RESPONDER, S.START, [E.RECEIVE_REQUEST, E.REFUSE])[-1] is S.REFUSED
    assert _walk(Role.REQUESTER, S.START, [E.SEND_REQUEST, E.RECEIVE_REFUSE])[-1] is S.REFUSED


def test_a_withdrawn_request_reaches_the_responder() -> None:
    # The requester may disconnect while its request waits for the responder's admin;
    # the responder, still "requested", must be able to apply the disconnect it receives.
    S = ConnState
    assert connection_next(Role.REQUESTER, S.REQUESTED, ConnEvent.DISCONNECT) is S.DISCONNECTED
    assert (
        connection_next(Role.RESPONDER, S.REQUESTED, ConnEvent.RECEIVE_DISCONNECT) is S.DISCONNECTED
    )


def test_whoever_can_disconnect_an_active_connection_the_peer_can_apply_it() -> None:
    S, E = ConnState, ConnEvent
    for me, peer in ((Role.REQUESTER, Role.RESPONDER), (Role.RESPONDER, Role.REQUESTER)):
        assert connection_next(me, S.ACTIVE, E.DISCONNECT) is S.DISCONNECTED
        assert connection_next(peer, S.ACTIVE, E.RECEIVE_DISCONNECT) is S.DISCONNECTED


def test_referral_happy_paths() -> None:
    RS = ReferralState
    sender = [RS.DEFERRED, RS.SENT, RS.DELIVERED, RS.RECEIVED, RS.ACCEPTED, RS.IN_PROGRESS, RS.WON]
    receiver = [RS.RECEIVED, RS.ACCEPTED, RS.IN_PROGRESS, RS.IN_PROGRESS, RS.LOST]
    for side, path in ((Side.SENDER, sender), (Side.RECEIVER, receiver)):
        for state, new in itertools.pairwise(path):
            assert referral_next(side, state, new) is new
    with pytest.raises(LocalProtocolError):
        referral_next(Side.RECEIVER, RS.WON, RS.IN_PROGRESS)
