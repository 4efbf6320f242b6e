"""Test vectors of invitations: the referral URL and key, redemption, what a receiver
refuses, and the direction granted for each (invitation, request) pair of spec 12.3.
Written to ``docs/vectors/invitations.json`` by :func:`node.codegen.vectors.build_vectors`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from node.codegen.vector_inputs import NOW, VectorNode, derive
from protocol.direction import MIRROR, grant_for_invitation
from protocol.encoding import b64u_encode
from protocol.errors import RemoteProtocolError
from protocol.invitations import (
    InvitationState,
    make_invitation,
    referral_key,
    referral_url,
    secret_hash,
)
from protocol.keys import fingerprint_of
from protocol.models import format_ts
from protocol.wire import INVITATION_PATH, ErrorCode


def invitations_file(nodes: dict[str, VectorNode]) -> dict[str, Any]:
    a = nodes["A"]
    secret = derive("invitation secret", 32)
    inv = make_invitation(
        base_url="https://a.refnode.example",
        node_id=a.node_id,
        invitation_id="inv-0001",
        secret=secret,
    )
    wrong = b64u_encode(derive("wrong secret", 32))
    expires = NOW + timedelta(days=7)
    stored = secret_hash(inv.secret)

    def redemption(
        presented: str, state: InvitationState, now: datetime, error: ErrorCode | None
    ) -> dict[str, Any]:
        return {
            "presented_secret": presented,
            "state": state.value,
            "now": format_ts(now),
            "error": None if error is None else error.value,
        }

    url = referral_url(inv)
    return {
        "description": (
            "An invitation of node A. The referral URL pins A's node id; the referral key is "
            "'rnk1_' + base64url(secret); A stores only secret_hash = base64url(SHA-256("
            "'refnode invitation' || 0x00 || secret)). A base_url never ends with '/': a "
            "receiver refuses one that does (the referral URL as invitation_invalid, the "
            "document as malformed); it does not normalise it. 'direction' gives, for each "
            "of the nine pairs (invitation's direction, request's direction), the direction "
            "granted or the refusal."
        ),
        "input": {
            "base_url": "https://a.refnode.example",
            "node_id": a.node_id,
            "invitation_id": "inv-0001",
            "secret_hex": secret.hex(),
        },
        "invitation": inv.wire(),
        "referral_url": url,
        "referral_key": referral_key(inv),
        "secret_hash": stored,
        "fingerprint": fingerprint_of(a.node_id),
        "redemption": {
            "stored_hash": stored,
            "expires_at": format_ts(expires),
            "cases": [
                redemption(inv.secret, InvitationState.OPEN, NOW, None),
                redemption(wrong, InvitationState.OPEN, NOW, ErrorCode.INVITATION_INVALID),
                redemption(inv.secret, InvitationState.USED, NOW, ErrorCode.INVITATION_USED),
                redemption(inv.secret, InvitationState.REVOKED, NOW, ErrorCode.INVITATION_REVOKED),
                redemption(inv.secret, InvitationState.OPEN, expires, ErrorCode.INVITATION_EXPIRED),
            ],
        },
        "parse_must_reject": [
            {"url": url, "key": "rnk2_" + inv.secret, "error": ErrorCode.INVITATION_INVALID.value},
            {
                "url": url,
                "key": referral_key(inv)[:-2],
                "error": ErrorCode.INVITATION_INVALID.value,
            },
            {
                "url": "https://a.refnode.example/somewhere/else?node=" + a.node_id,
                "key": referral_key(inv),
                "error": ErrorCode.INVITATION_INVALID.value,
            },
            {
                "url": url.replace(a.node_id, a.node_id[:-1]),
                "key": referral_key(inv),
                "error": ErrorCode.INVITATION_INVALID.value,
            },
            {
                "name": "base_url with a trailing '/' (refused, not normalised)",
                "url": url.replace(INVITATION_PATH, "/" + INVITATION_PATH),
                "key": referral_key(inv),
                "error": ErrorCode.INVITATION_INVALID.value,
            },
        ],
        "document_must_reject": [
            {
                "name": "base_url with a trailing '/'",
                "invitation": dict(inv.wire(), base_url=inv.base_url + "/"),
                "error": ErrorCode.MALFORMED.value,
            },
        ],
        "direction": _direction_section(),
    }


_DIRECTIONS = ("both", "send", "receive")


def _direction_row(invitation: str, asked: str) -> dict[str, Any]:
    row: dict[str, Any] = {"invitation": invitation, "asked": asked}
    try:
        granted = grant_for_invitation(invitation, asked)
    except RemoteProtocolError as refused:
        return row | {"error": refused.code.value, "detail": dict(refused.detail)}
    return row | {"granted": granted, "accept_direction": MIRROR[granted]}


def _direction_section() -> dict[str, Any]:
    """Every (invitation's direction, direction asked) pair of spec 12.3 and its outcome."""
    return {
        "description": (
            "Redeeming an invitation (spec 12.3): 'invitation' is the direction the inviting "
            "admin set, from the inviting node's (responder's) view; 'asked' is the "
            "connection-request's direction, from the requester's view. The grant is what "
            "both allow: the wish may narrow the invitation, never widen it. 'granted' is "
            "what the responder stores (its view); 'accept_direction' is the direction of "
            "its connection-accept (the requester's view). A row with 'error' is refused "
            "with that code (403, signed rejected receipt, invitation left open); its "
            "'detail' is what the reference sends, which the spec allows but does not "
            "require (detail.invitation: what the invitation allows, requester's view)."
        ),
        "cases": [_direction_row(i, a) for i in _DIRECTIONS for a in _DIRECTIONS],
    }


