"""The negative matrix: envelopes a receiver must refuse, each with the code, the status
and the receipt (or none) that docs/protocol.md gives. One :class:`Case` per entry of
:data:`CASES`: a new rule to check is one more entry (the strict JSON rules are in
:mod:`conformance.cases_json`)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import timedelta

from conformance import forge
from conformance import messages as m
from conformance.case import Case
from conformance.cases_json import JSON_CASES
from conformance.peer import Peer, new_id
from conformance.session import Session
from conformance.target import Mismatch
from protocol.encoding import b64u_encode
from protocol.keys import SigningKey
from protocol.wire import MAX_CLOCK_SKEW_S, MAX_ENVELOPE_AGE_S


def confirm(s: Session, **kw: object) -> forge.Sent:
    """The carrier: a connection-confirm on the active connection, which the target
    answers ``duplicate``; each case breaks one thing in it."""
    return s.envelope({"connection_id": s.connection_id or new_id("con")}, m.CONFIRM, **kw)


def _stranger(s: Session) -> forge.Sent:
    stranger = Peer(name="Conformance Stranger", base_url=s.peer.base_url)
    stranger.publish(s.now())
    assert s.target.keys is not None
    return forge.envelope(stranger, s.target.keys, {"connection_id": new_id("con")}, m.CONFIRM, now=s.now())


def _introduction(s: Session, *, discovery_of: Peer | None = None, **kw: object) -> forge.Sent:
    """A connection request from a stranger to a user that does not exist (so that, were
    it let through, it would be refused as ``unknown_user``), carrying the discovery
    document of ``discovery_of`` (by default the stranger's own)."""
    stranger = Peer(name="Conformance Stranger", base_url=s.peer.base_url)
    stranger.publish(s.now())
    assert s.target.keys is not None
    request = m.request(discovery_of or stranger, new_id("con"), target_email="nobody@conformance.invalid")
    return forge.envelope(stranger, s.target.keys, request, m.REQUEST, now=s.now(), **kw)  # type: ignore[arg-type]


def _too_large(s: Session) -> forge.Sent:
    assert s.target.keys is not None
    body = b'{"payload":"' + b"A" * s.target.keys.max_envelope_bytes + b'","protected":"","signature":""}'
    return forge.Sent(body, new_id("env"), "", m.CONFIRM)


def _tampered_signature(s: Session) -> forge.Sent:
    sent = confirm(s)
    raw = forge.rewrite(sent.raw, lambda parts: parts.update(signature=forge.flip(parts["signature"])))
    return forge.Sent(raw, sent.envelope_id, sent.sha256, sent.message_type)


def _offer(s: Session, **changes: object) -> forge.Sent:
    return s.envelope(m.offer(s.connection_id or "", new_id("rfl"), s.now(), **changes), m.OFFER)


def _unconsented(s: Session) -> forge.Sent:
    body = m.offer(s.connection_id or "", new_id("rfl"), s.now())
    body["contacts"].append({"ref": "ct_2", "first_name": "Second"})
    return s.envelope(body, m.OFFER)


def _unshared(s: Session) -> forge.Sent:
    body = m.offer(s.connection_id or "", new_id("rfl"), s.now())
    body["deal"].update(amount="450000.00", currency="AUD")
    return s.envelope(body, m.OFFER)


def _damaged(box: bytes) -> bytes:
    return box[:-1] + bytes([box[-1] ^ 0x01])


OTHER_NODE = b64u_encode(os.urandom(32))
CASES: list[Case] = [
    Case("tampered signature", "8.5 step 6b", "bad_signature", False, _tampered_signature),
    Case("tampered ciphertext (outer signature valid)", "8.5 step 9", "decrypt_failed", True,
         lambda s: confirm(s, sealed=_damaged)),
    Case("inner routing differs from the outer header", "8.5 step 11", "bad_signature", True,
         lambda s: confirm(s, inner={"rn_iat": "2020-01-01T00:00:00Z"})),
    Case("wrong recipient", "8.5 step 7a", "wrong_recipient", True, lambda s: confirm(s, to=OTHER_NODE)),
    Case("expired", "8.5 step 7c, 10", "expired", True,
         lambda s: confirm(s, iat=s.now() - timedelta(seconds=MAX_ENVELOPE_AGE_S + 3600))),
    Case("not yet valid", "8.5 step 7b, 10", "not_yet_valid", True,
         lambda s: confirm(s, iat=s.now() + timedelta(seconds=MAX_CLOCK_SKEW_S + 3600))),
    Case("wrong content type", "7.3, 8.5 step 1b", "malformed", False, confirm, content_type="text/plain", connected=False),
    Case("too large", "7.3, 8.5 step 1a", "too_large", False, _too_large, connected=False),
    Case("too large, sent chunked", "7.3, 8.5 step 1c", "too_large", False, _too_large, chunked=True,
         connected=False),
    # The order of steps 1a to 1c: the declared length first, then the type, then the read.
    Case("check order: a declared length over the limit before a wrong content type", "8.5 steps 1a, 1b",
         "too_large", False, _too_large, content_type="text/plain", connected=False),
    Case("check order: a wrong content type before reading an oversized chunked body", "8.5 steps 1b, 1c",
         "malformed", False, _too_large, content_type="text/plain", chunked=True, connected=False),
    Case("unknown sender", "8.5 step 5", "unknown_sender", False, _stranger, connected=False),
    Case("introduction to another node", "8.6 I1", "wrong_recipient", False,
         lambda s: _introduction(s, to=OTHER_NODE), connected=False),
    Case("introduction with another node's discovery document", "8.6 I4", "fingerprint_mismatch", False,
         lambda s: _introduction(s, discovery_of=s.peer), connected=False),
    Case("unknown key", "8.5 step 6a", "unknown_key", False,
         lambda s: confirm(s, key=SigningKey.from_seed(os.urandom(32)))),
    Case("identity key signing an envelope", "8.5 step 6a", "unknown_key", False,
         lambda s: confirm(s, key=s.peer.identity)),
    Case("field not allowed", "14.5", "field_not_allowed", True, _unshared, offer=True),
    Case("consent missing for a contact", "14.5", "consent_required", True, _unconsented, offer=True),
    Case("not connected (unknown connection)", "14.3 row 1", "not_connected", True,
         lambda s: s.envelope(m.offer(new_id("con"), new_id("rfl"), s.now()), m.OFFER)),
    Case("unknown subject (status of a referral never sent)", "14.4 row 1", "unknown_subject", True,
         lambda s: s.envelope(m.status(new_id("rfl"), 1, "accepted", s.now()), m.STATUS)),
    Case("unknown subject (confirm of an unknown connection)", "12.5", "unknown_subject", True,
         lambda s: s.envelope({"connection_id": new_id("con")}, m.CONFIRM)),
    Case("unsupported version (rn_v)", "8.5 step 3b", "unsupported_version", False,
         lambda s: confirm(s, outer={"rn_v": 2}), connected=False),
    Case("unsupported version (rn_type major)", "8.5 step 4b", "unsupported_version", False,
         lambda s: confirm(s, outer={"rn_type": "connection-confirm/2.0"}, inner={"rn_type": "connection-confirm/2.0"}), connected=False),
    Case("unsupported type", "8.5 step 4c", "unsupported_type", False,
         lambda s: confirm(s, outer={"rn_type": "referral-gossip/1.0"}, inner={"rn_type": "referral-gossip/1.0"}), connected=False),
    Case("unsupported suite", "8.5 step 8a", "unsupported_suite", True,
         lambda s: confirm(s, outer={"rn_suite": "X448-HKDF-SHA512-AES256GCM"})),
    Case("unknown encryption key", "8.5 step 8b", "unknown_key", True,
         lambda s: confirm(s, outer={"rn_enc_kid": b64u_encode(os.urandom(32))})),
    Case("alg EdDSA", "5.1", "malformed", False, lambda s: confirm(s, outer={"alg": "EdDSA"}), connected=False),
    Case("crit header", "5.3", "malformed", False, lambda s: confirm(s, outer={"crit": ["rn_v"]}), connected=False),
    Case("unknown outer header member", "8.2", "malformed", False, lambda s: confirm(s, outer={"rn_extra": 1}), connected=False),
    Case("unknown inner header member", "8.3", "malformed", True, lambda s: confirm(s, inner={"rn_v": 1})),
    *JSON_CASES,
]


async def run(s: Session) -> None:
    for case in CASES:
        why = None if s.active or not case.connected else "no active connection"
        if case.offer and why is None and s.direction not in ("send", "both"):
            why = f"the connection's direction ({s.direction}) does not let us refer"
        await s.check(case.name, case.section, _runner(s, case), needs=why)
    await s.check("replay: the same bytes get the original receipt", "7.4, 10", lambda: _replay(s),
                  needs=None if s.active else "no active connection")
    await s.check("replay: the same id with other bytes is refused", "10, 8.7", lambda: _same_id(s),
                  needs=None if s.active else "no active connection")


def _runner(s: Session, case: Case) -> Callable[[], Awaitable[None]]:
    async def run_case() -> None:
        sent = case.build(s)
        await s.refused(sent, case.code, signed=case.signed, content_type=case.content_type, chunked=case.chunked)
    return run_case


def _fresh(s: Session, **kw: object) -> tuple[forge.Sent, str]:
    """An envelope a node applies once, with the disposition of its first delivery: a
    new referral offer (applied again, it would be a duplicate), or where we may not
    refer, the carrier."""
    if s.direction in ("send", "both"):
        return s.envelope(m.offer(s.connection_id or "", new_id("rfl"), s.now()), m.OFFER, **kw), "accepted"
    return confirm(s, **kw), "duplicate"


async def _replay(s: Session) -> None:
    sent, disposition = _fresh(s)
    first = await s.target.post(sent.raw)
    s.target.receipt(first, sent, disposition=disposition)
    again = await s.target.post(sent.raw)
    if again.status != 200 or again.body != first.body:
        raise Mismatch(f"the repeat got {again.describe()}, not the original receipt")


async def _same_id(s: Session) -> None:
    sent, disposition = _fresh(s)
    s.target.receipt(await s.target.post(sent.raw), sent, disposition=disposition)
    other = confirm(s, envelope_id=sent.envelope_id)  # other bytes under the same id
    await s.refused(other, "replayed", signed=True)
