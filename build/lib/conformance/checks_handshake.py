"""Discovery and the two handshakes, with the invitation's refusals (docs/protocol.md
sections 4.7, 4.8, 11 and 12)."""

from __future__ import annotations

from datetime import timedelta

from conformance import forge
from conformance import messages as m
from conformance.listener import Arrival
from conformance.peer import Peer, new_id
from conformance.session import Session, Skip
from conformance.target import Mismatch
from protocol.errors import ProtocolError
from protocol.invitations import parse_referral
from protocol.messages import ConnectionAccept, Invitation
from protocol.suites import SuiteId


async def run(s: Session) -> None:
    invitation = _invitation(s.options.url, s.options.key) if s.options.request_email is None else None
    base_url = invitation.base_url if invitation else s.options.url
    s.target.base_url = base_url.rstrip("/")

    async def discovery() -> None:
        _, ctype, _ = await s.target.discover(invitation.node_id if invitation else None)
        if ctype != "application/jose+json":
            raise Mismatch(f"discovery Content-Type is {ctype}, not application/jose+json")

    if not await s.check("discovery document verifies", "4.8, 7.2", discovery):
        return
    await s.check("discovery lists the suites of its active encryption keys", "4.7", lambda: _suites(s))
    s.peer.publish(s.now() - timedelta(minutes=1))
    if invitation is not None:
        await _by_invitation(s, invitation)
    else:
        await _by_request(s)


def _invitation(url: str, key: str | None) -> Invitation:
    if not key:
        raise SystemExit("refnode conformance: give the referral key (--key) with a referral URL, "
                         "or --request EMAIL with the node's base URL")
    try:
        return parse_referral(url, key)
    except ProtocolError as exc:
        raise SystemExit(f"refnode conformance: {exc.message}") from None


async def _suites(s: Session) -> None:
    assert s.target.doc is not None
    active: list[str] = []
    for entry in s.target.doc.keys:
        if entry.use == "enc" and entry.status == "active" and entry.suite not in active:
            active.append(str(entry.suite))
    if sorted(s.target.doc.suites) != sorted(active):
        raise Mismatch(f"suites {s.target.doc.suites} but active encryption keys for {active}")
    if SuiteId.X25519_CHACHA not in s.target.doc.suites:
        raise Mismatch("the mandatory suite is not listed")


def _stranger(s: Session) -> Peer:
    """Another throwaway node, for a request that must be refused."""
    other = Peer(name="Conformance Stranger", base_url=s.peer.base_url)
    other.publish(s.now() - timedelta(minutes=1))
    return other


def _stranger_request(s: Session, **target: object) -> tuple[Peer, forge.Sent]:
    assert s.target.keys is not None
    stranger = _stranger(s)
    message = m.request(stranger, new_id("con"), **target)  # type: ignore[arg-type]
    return stranger, forge.envelope(stranger, s.target.keys, message, m.REQUEST, now=s.now())


async def _refused_request(s: Session, code: str, **target: object) -> None:
    """A connection request from a stranger, refused with ``code`` and a signed receipt
    (the requester is authenticated by then: section 8.6, I6)."""
    stranger, sent = _stranger_request(s, **target)
    await s.refused(sent, code, signed=True, me=stranger.node_id)


async def _alike(s: Session, wrong: tuple[str, str], unknown: tuple[str, str]) -> None:
    """Checks 1 and 2 of section 11.4 fail alike: same status, code and message."""
    answers = []
    for proof in (wrong, unknown):
        stranger, sent = _stranger_request(s, invitation=proof)
        answer = await s.target.post(sent.raw)
        s.target.refusal(answer, "invitation_invalid", sent=sent, signed=True, me=stranger.node_id)
        answers.append((answer.status, answer.code(), answer.json()["error"]["message"]))
    if answers[0] != answers[1]:
        raise Mismatch(f"a wrong key got {answers[0]}, an unknown id {answers[1]}")


async def _by_invitation(s: Session, invitation: Invitation) -> None:
    proof = (invitation.invitation_id, invitation.secret)
    wrong = (invitation.invitation_id, "A" * 42 + "E")
    await s.check("invitation with a wrong key is refused", "11.4",
                  lambda: _refused_request(s, "invitation_invalid", invitation=wrong))
    await s.check("an unknown invitation id is answered as a wrong key is", "11.4",
                  lambda: _alike(s, wrong, (new_id("inv"), wrong[1])))

    async def expired() -> None:
        old = _invitation(s.options.expired_url or "", s.options.expired_key)
        if old.node_id != invitation.node_id:
            raise Skip("the expired invitation is for another node")
        await _refused_request(s, "invitation_expired", invitation=(old.invitation_id, old.secret))

    await s.check("expired invitation is refused", "11.4, 11.5", expired,
                  needs=None if s.options.expired_url and s.options.expired_key else
                  "an invitation cannot be made to expire from outside: give --expired-url and "
                  "--expired-key, an invitation whose expiry has passed (e.g. one made with a 1 s expiry)")
    connected = await s.check("handshake by invitation: request, accept, confirm", "12.1",
                              lambda: _handshake(s, invitation=proof))
    await _unless_checked(s)
    await s.check("reused invitation is refused", "11.5",
                  lambda: _refused_request(s, "invitation_used", invitation=proof),
                  needs=None if connected else "the invitation was not redeemed")
    await s.check("a direction with nothing in common is refused, and the invitation stays open",
                  "11.4, 12.3", lambda: _one_way(s, invitation),
                  needs=None if s.options.one_way_url and s.options.one_way_key else
                  "give --one-way-url and --one-way-key, an invitation made with direction send")


async def _one_way(s: Session, invitation: Invitation) -> None:
    """On an invitation with direction ``send`` (the target refers), a requester that asks
    to send too has nothing in common with it: ``direction_not_allowed``, and nothing
    stored; the same invitation then takes a request for ``both`` (section 12.3)."""
    one_way = _invitation(s.options.one_way_url or "", s.options.one_way_key)
    if one_way.node_id != invitation.node_id:
        raise Skip("the one-way invitation is for another node")
    proof = (one_way.invitation_id, one_way.secret)
    assert s.target.keys is not None
    # A stranger whose inbox is not the suite's: the target's accept goes nowhere we read.
    stranger = Peer(name="Conformance Stranger", base_url=s.peer.base_url + "/one-way")
    stranger.publish(s.now() - timedelta(minutes=1))
    sent = forge.envelope(stranger, s.target.keys, m.request(stranger, new_id("con"), invitation=proof,
                                                             direction="send"), m.REQUEST, now=s.now())
    answer = await s.target.post(sent.raw)
    if answer.status == 200:
        raise Mismatch(f"a request for send on it got {answer.describe()} (was it made with direction send?)")
    s.target.refusal(answer, "direction_not_allowed", sent=sent, signed=True, me=stranger.node_id)
    again = forge.envelope(stranger, s.target.keys, m.request(stranger, new_id("con"), invitation=proof),
                           m.REQUEST, now=s.now())
    s.target.receipt(await s.target.post(again.raw), again, me=stranger.node_id)


async def _by_request(s: Session) -> None:
    for name in ("invitation with a wrong key is refused", "expired invitation is refused",
                 "reused invitation is refused"):
        await s.check(name, "11.4", _nothing, needs="--request: no invitation to test")
    await s.check("request to an unknown user is refused", "12.2",
                  lambda: _refused_request(s, "unknown_user", target_email=f"nobody.{new_id('u')}@conformance.invalid"))
    await s.check("handshake by request: request, accept, confirm", "12.2",
                  lambda: _handshake(s, email=s.options.request_email))
    await _unless_checked(s)


async def _nothing() -> None:
    return None


INVALID_ACCEPT = ("connection-accept to the responder is an invalid transition", "12.4")


async def _unless_checked(s: Session) -> None:
    """The handshake checks the invalid accept on its way; if it stopped before, say so."""
    if not any(r.name == INVALID_ACCEPT[0] for r in s.results):
        await s.check(*INVALID_ACCEPT, _nothing, needs="the handshake stopped before the accept")


async def _handshake(s: Session, *, invitation: tuple[str, str] | None = None, email: str | None = None) -> None:
    cid = new_id("con")
    request = await s.deliver(m.request(s.peer, cid, invitation=invitation, target_email=email), m.REQUEST)
    s.connection_id = cid

    def is_accept(a: Arrival) -> bool:
        return a.type.value == "connection-accept" and getattr(a.opened.message, "connection_id", None) == cid

    if email is not None:
        arrival = await s.ask("accept-connection", f"accept the connection request from "
                              f"'{s.peer.name}' (node {s.peer.node_id})", is_accept,
                              {"connection_id": cid, "node_id": s.peer.node_id})
    else:
        waited = await s.inbox.wait_for(is_accept, s.options.wait_s)
        if waited is None:
            raise Mismatch(f"no connection-accept arrived within {s.options.wait_s:.0f} s "
                           f"(can the target reach {s.peer.base_url}? see --public-url)")
        arrival = waited
    accept: ConnectionAccept = arrival.opened.message  # type: ignore[assignment]
    s.direction = accept.direction
    if arrival.opened.parsed.header.rn_reply_to not in (None, request.envelope_id):
        raise Mismatch("the connection-accept's rn_reply_to names another envelope")
    # The responder is in "responded" now: an accept sent to it has no transition (12.4).
    wrong = s.envelope(ConnectionAccept(connection_id=cid, direction="both", accepted_by=m.TESTER,
                                        name=s.peer.name), m.ACCEPT)
    await s.check(*INVALID_ACCEPT, lambda: s.refused(wrong, "invalid_transition", signed=True))
    await s.deliver({"connection_id": cid}, m.CONFIRM, reply_to=arrival.opened.parsed.envelope_id)
    s.active = True
