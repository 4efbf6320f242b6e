"""Envelopes, well made or broken on purpose.

:func:`envelope` builds an envelope as docs/protocol.md section 8.4 says, from the same
``protocol/`` primitives a node uses, and every keyword argument breaks one thing a
receiver must notice: a header member changed, added or removed, the wrong signing key,
the payload sealed to the wrong ``info``, the ciphertext damaged after sealing, a message
that is not strict JSON. The signatures are made over whatever was built, so a receiver
sees a well-signed envelope with one fault in it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conformance.peer import Peer, new_id
from protocol.discovery import PeerKeys
from protocol.encoding import b64u_encode, dumps_canonical
from protocol.envelope import digest
from protocol.keys import SigningKey
from protocol.models import WireModel, format_ts
from protocol.suites import MANDATORY_SUITE, SuiteId, hpke_info, seal
from protocol.wire import MAJOR, TYP_ENVELOPE, TYP_INNER

#: Remove a member from a header (``outer={"rn_reply_to": DROP}``).
DROP = object()


@dataclass(frozen=True)
class Sent:
    """An envelope's exact bytes, with what a receipt for it must name."""

    raw: bytes
    envelope_id: str
    sha256: str
    message_type: str


def sign(header: dict[str, Any], payload: bytes, key: SigningKey) -> tuple[str, str, str]:
    """The three base64url parts of a JWS over ``header`` exactly as given (nothing added)."""
    protected = b64u_encode(dumps_canonical(header))
    body = b64u_encode(payload)
    signature = b64u_encode(key.sign(f"{protected}.{body}".encode("ascii")))
    return protected, body, signature


def _apply(header: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(header)
    for name, value in changes.items():
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def envelope(
    peer: Peer,
    target: PeerKeys,
    message: WireModel | dict[str, Any] | bytes,
    message_type: str,
    *,
    now: datetime,
    envelope_id: str | None = None,
    iat: datetime | None = None,
    to: str | None = None,
    reply_to: str | None = None,
    key: SigningKey | None = None,
    inner_key: SigningKey | None = None,
    outer: dict[str, Any] | None = None,
    inner: dict[str, Any] | None = None,
    sealed: Callable[[bytes], bytes] | None = None,
    suite: SuiteId = MANDATORY_SUITE,
) -> Sent:
    """An envelope from ``peer`` to ``target``; ``message_type`` is the wire ``rn_type``
    (``"referral-offer/1.0"``). ``message`` is a model, a JSON object, or exact bytes.
    ``outer`` and ``inner`` change header members (:data:`DROP` removes one), ``key``
    and ``inner_key`` sign with another key, ``sealed`` rewrites the sealed payload,
    ``suite`` seals with another suite the target offers."""
    envelope_id = envelope_id or new_id("env")
    key = key or peer.signing
    routing: dict[str, Any] = {
        "rn_id": envelope_id,
        "rn_type": message_type,
        "rn_from": peer.node_id,
        "rn_to": to or target.node_id,
        "rn_iat": format_ts(iat or now),
    }
    if reply_to is not None:
        routing["rn_reply_to"] = reply_to
    if isinstance(message, WireModel):
        payload = dumps_canonical(message.wire())
    elif isinstance(message, dict):
        payload = dumps_canonical(message)
    else:
        payload = message
    signer = inner_key or key
    inner_header = _apply({"typ": TYP_INNER, "alg": "Ed25519", "kid": signer.kid, **routing}, inner or {})
    inner_jws = ".".join(sign(inner_header, payload, signer)).encode("ascii")
    enc_key = next(k for offered, k in target.encryption if offered is suite)
    box = seal(suite, enc_key, inner_jws, hpke_info(peer.node_id, routing["rn_to"], envelope_id))
    if sealed is not None:
        box = sealed(box)
    outer_header = _apply({"typ": TYP_ENVELOPE, "alg": "Ed25519", "kid": key.kid, "rn_v": MAJOR,
                           "rn_suite": suite.value, "rn_enc_kid": enc_key.kid, **routing}, outer or {})
    protected, body, signature = sign(outer_header, box, key)
    raw = dumps_canonical({"payload": body, "protected": protected, "signature": signature})
    return Sent(raw, envelope_id, digest(raw), message_type)


def flip(text: str, at: int = -5) -> str:
    """``text`` with one base64url character changed (at ``at``), still base64url."""
    chars = list(text)
    chars[at] = "A" if chars[at] != "A" else "B"
    return "".join(chars)


def rewrite(raw: bytes, change: Callable[[dict[str, str]], None]) -> bytes:
    """The flattened JWS ``raw`` with its members changed by ``change`` (not re-signed)."""
    parts = json.loads(raw)
    change(parts)
    return dumps_canonical(parts)
