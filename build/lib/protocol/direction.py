"""Which way referrals may flow on a connection (spec 12.3).

A direction is always stated from the point of view of the node that writes or stores
it: ``send`` (this node may send referral offers), ``receive`` (it may receive them) or
``both``. Seen from the other node, ``send`` and ``receive`` swap.
"""

from __future__ import annotations

from typing import Final, Literal

from protocol.errors import RemoteProtocolError
from protocol.wire import ErrorCode

Direction = Literal["send", "receive", "both"]

#: The same direction seen from the other node.
MIRROR: Final[dict[str, Direction]] = {"send": "receive", "receive": "send", "both": "both"}

_FLOWS: Final[dict[str, frozenset[str]]] = {
    "send": frozenset({"send"}),
    "receive": frozenset({"receive"}),
    "both": frozenset({"send", "receive"}),
}
_BY_FLOWS: Final[dict[frozenset[str], Direction]] = {
    frozenset({"send"}): "send",
    frozenset({"receive"}): "receive",
    frozenset({"send", "receive"}): "both",
}


def grant_for_invitation(invitation: str, asked: str) -> Direction:
    """The direction a responder grants when an invitation is redeemed, from its own view.

    ``invitation`` is the direction its admin set on the invitation (responder's view);
    ``asked`` is the ``direction`` of the connection-request (requester's view). The
    grant is what both allow: the wish may narrow the invitation, never widen it. When
    they have no flow in common the request is refused (``direction_not_allowed``).
    """
    common = _FLOWS[invitation] & _FLOWS[MIRROR[asked]]
    if not common:
        raise RemoteProtocolError(
            ErrorCode.DIRECTION_NOT_ALLOWED,
            f"the invitation lets this node {invitation} referrals; the request asked for "
            f"{asked}, which it does not allow",
            invitation=MIRROR[invitation],
        )
    return _BY_FLOWS[frozenset(common)]
