"""Spec 12.3: redeeming an invitation, the requester's wish may narrow the invitation's
direction, never widen it; with nothing in common the request is refused."""

from __future__ import annotations

import pytest

from protocol.direction import MIRROR, grant_for_invitation
from protocol.errors import RemoteProtocolError

# (invitation, from the inviting node's view; asked, from the requester's view) -> granted,
# from the inviting node's view, or None: refused with direction_not_allowed.
TABLE = {
    ("both", "both"): "both",
    ("both", "send"): "receive",  # the requester only sends: the inviter only receives
    ("both", "receive"): "send",
    ("receive", "both"): "receive",  # the wish does not widen the invitation
    ("receive", "send"): "receive",
    ("receive", "receive"): None,
    ("send", "both"): "send",
    ("send", "receive"): "send",
    ("send", "send"): None,
}


@pytest.mark.parametrize(("invitation", "asked"), sorted(TABLE))
def test_grant(invitation: str, asked: str) -> None:
    expected = TABLE[(invitation, asked)]
    if expected is None:
        with pytest.raises(RemoteProtocolError) as caught:
            grant_for_invitation(invitation, asked)
        assert caught.value.code.value == "direction_not_allowed"
        assert caught.value.detail["invitation"] == MIRROR[invitation]
    else:
        assert grant_for_invitation(invitation, asked) == expected


def test_the_grant_is_within_both_the_invitation_and_the_wish() -> None:
    flows = {"send": {"send"}, "receive": {"receive"}, "both": {"send", "receive"}}
    for (invitation, asked), granted in TABLE.items():
        if granted is not None:
            assert flows[granted] <= flows[invitation]
            assert flows[MIRROR[granted]] <= flows[asked]
