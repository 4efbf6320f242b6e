"""Invitations: what one admin hands to another to connect two nodes.

The inviting node makes an invitation with a random 32-byte secret and shows it as
two strings, as Salestrekker's Access Referrals does:

- the **referral URL** ``{base_url}/refnode/v1/invitations/{invitation_id}?node={node_id}``
  says where the inviting node is and pins its node id (hence its fingerprint);
- the **referral key** ``rnk1_{secret}`` is the secret, base64url.

The inviting node stores only :func:`secret_hash` of the secret. The accepting node sends
the secret back only inside a ``connection-request`` envelope, sealed to the inviter's
pinned key and signed by the acceptor's key. An invitation is single-use and expires.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from enum import StrEnum
from urllib.parse import parse_qs, urlsplit

from protocol.encoding import b64u_decode, b64u_encode
from protocol.errors import RemoteProtocolError
from protocol.messages import Invitation
from protocol.models import validate
from protocol.wire import INVITATION_PATH, DocumentType, ErrorCode, versioned

KEY_PREFIX = "rnk1_"


class InvitationState(StrEnum):
    OPEN = "open"
    USED = "used"
    REVOKED = "revoked"
    EXPIRED = "expired"


def make_invitation(*, base_url: str, node_id: str, invitation_id: str, secret: bytes) -> Invitation:
    if len(secret) != 32:
        raise ValueError("an invitation secret is 32 random bytes")
    if base_url.endswith("/"):  # nothing is silently changed: the URL is what a peer pins
        raise ValueError("an invitation's base_url has no trailing '/'")
    return Invitation(
        type=versioned(DocumentType.INVITATION),
        base_url=base_url,
        invitation_id=invitation_id,
        node_id=node_id,
        secret=b64u_encode(secret),
    )


def referral_url(inv: Invitation) -> str:
    return f"{inv.base_url}{INVITATION_PATH}/{inv.invitation_id}?node={inv.node_id}"


def referral_key(inv: Invitation) -> str:
    return KEY_PREFIX + inv.secret


#: What a referral URL looks like, for the people who paste one.
REFERRAL_URL_SHAPE = f"https://their-node.example{INVITATION_PATH}/inv_...?node=..."

#: The parts of an invitation a damaged referral URL or key may break, in words.
_PARTS = {"base_url": "its address", "invitation_id": "its invitation id (after /invitations/)",
          "node_id": "its node id (after ?node=)", "secret": "the referral key"}


def _not_a_referral_url(why: str) -> RemoteProtocolError:
    return RemoteProtocolError(
        ErrorCode.INVITATION_INVALID,
        f"{why}; a referral URL looks like {REFERRAL_URL_SHAPE}: paste it whole, as the inviting admin sent it",
    )


def parse_referral(url: str, key: str) -> Invitation:
    """Turn a referral URL and key, as pasted by a person, back into an invitation. A
    failure says, in words, which part is wrong and what a referral URL looks like."""
    url, key = url.strip(), key.strip()
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "http://[" (a broken IPv6 host)
        raise _not_a_referral_url("not a referral URL") from None
    marker = INVITATION_PATH + "/"
    if parts.scheme not in ("http", "https") or marker not in parts.path:
        raise _not_a_referral_url(f"not a referral URL: it has no {marker}")
    base_path, _, invitation_id = parts.path.rpartition(marker)
    node = parse_qs(parts.query).get("node", [""])[0]
    if not key.startswith(KEY_PREFIX):
        raise RemoteProtocolError(ErrorCode.INVITATION_INVALID, f"a referral key starts with {KEY_PREFIX}")
    secret = key[len(KEY_PREFIX) :]
    try:
        if len(b64u_decode(secret, what="referral key")) != 32:
            raise ValueError
    except (RemoteProtocolError, ValueError):
        raise RemoteProtocolError(ErrorCode.INVITATION_INVALID, "the referral key is damaged") from None
    try:
        return validate(
            Invitation,
            {
                "type": versioned(DocumentType.INVITATION),
                "base_url": f"{parts.scheme}://{parts.netloc}{base_path}",
                "invitation_id": invitation_id,
                "node_id": node,
                "secret": secret,
            },
        )
    except RemoteProtocolError as exc:
        errors = exc.detail.get("errors") or [{"loc": [""]}]
        broken = _PARTS.get(str(errors[0]["loc"][0]), "a part of it")
        raise _not_a_referral_url(f"the referral URL is damaged: {broken} is cut short or changed") from None


def secret_hash(secret: str) -> str:
    """What the inviting node stores: base64url of SHA-256(``"refnode invitation" 0x00 ||
    secret``), the secret being the referral key's 32 bytes."""
    return b64u_encode(hashlib.sha256(b"refnode invitation\x00" + b64u_decode(secret)).digest())


#: Compared against when the invitation id is unknown, so that the answer, and the work
#: done before it, are those of a wrong key (a secret_hash is never 64 zeros).
_NO_INVITATION = "0" * 64


def check_redemption(
    *,
    stored_hash: str | None,
    state: InvitationState | None,
    expires_at: datetime | None,
    presented_secret: str,
    now: datetime,
) -> None:
    """Raise unless the presented secret redeems this open, unexpired invitation.

    ``stored_hash`` is None when no invitation has the presented id: the requester then
    gets the very answer a wrong key gets (``invitation_invalid``, same message), after
    the same hashing and comparison, so ids cannot be probed apart from keys."""
    try:
        presented = secret_hash(presented_secret)
    except RemoteProtocolError:
        presented = ""
    matches = hmac.compare_digest(presented.encode(), (stored_hash or _NO_INVITATION).encode())
    if stored_hash is None or state is None or expires_at is None or not matches:
        raise RemoteProtocolError(ErrorCode.INVITATION_INVALID, "the referral key does not match this invitation")
    if state is InvitationState.USED:
        raise RemoteProtocolError(ErrorCode.INVITATION_USED, "this invitation was already used")
    if state is InvitationState.REVOKED:
        raise RemoteProtocolError(ErrorCode.INVITATION_REVOKED, "this invitation was revoked")
    if state is InvitationState.EXPIRED or now >= expires_at:
        raise RemoteProtocolError(ErrorCode.INVITATION_EXPIRED, "this invitation has expired")
