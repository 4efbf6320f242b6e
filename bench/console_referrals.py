"""The referrals of the console benchmark's database, written by the node's own functions.

Peers are synthetic: each has its own keys and a signed discovery document (inbox on a
loopback port nobody listens on), stored as a finished handshake leaves it, with an
active connection both ways. Then, each in the node's own code, at a moment of the past
year (``TxContext.now``):

- **sent**: ``refer_deal`` on a local deal (its offer, referral row, sealed outbox item
  and notes); the peer's signed receipt (``mark_delivered``, ``on_delivered``); then the
  peer's status updates, sealed by the peer and applied with ``on_status``, each with
  its inbox row and our receipt;
- **received**: the peer's offer sealed to us and filed by ``on_offer`` with the node's
  lander (a deal, its contacts and note, in the connection's workflow), with its inbox
  row and our receipt; then our updates (``report_status``, the deal moved to the
  matching stage), each delivered with the peer's receipt.

Each referral ends in a state drawn from ``OUTCOMES``. About 10 ms a referral (sealing,
signing, the node's checks and SQL), so 10,000 take two to four minutes.
"""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from console_data import FIRST, LAST, PEERS, PLACES, STREETS, Scale

from node.base.config import Config
from node.base.ids import new_id
from node.base.keystore import KeyStore
from node.crm import store as crm
from node.federation import referrals
from node.federation.landing import land_offer
from node.federation.outbox import Effects, TxContext
from node.federation.referring import ConsentIn, ReferDealIn, refer_deal
from node.storage import store
from node.storage.db import Database
from node.storage.records import Connection, InboxItem
from protocol.discovery import PeerKeys, build_discovery, sign_discovery, verify_discovery
from protocol.envelope import OpenedEnvelope, Routing, parse_envelope, sign_message, sign_outer
from protocol.keys import DecryptionKey, EncryptionPublicKey, SigningKey
from protocol.messages import (
    Consent,
    ContactProfile,
    DealSummary,
    Person,
    ReferralOffer,
    ReferralStatus,
)
from protocol.models import WireModel, format_ts
from protocol.offers import SHAREABLE_FIELDS
from protocol.receipts import make_receipt
from protocol.suites import SuiteId, hpke_info, seal
from protocol.wire import INBOX_PATH, Disposition, MessageType, versioned

#: Where referrals end, with their weights: the status updates that lead there.
OUTCOMES: tuple[tuple[tuple[str, ...], int], ...] = (
    ((), 15), (("accepted",), 12), (("accepted", "in-progress"), 30), (("accepted", "in-progress", "won"), 25),
    (("accepted", "in-progress", "lost"), 10), (("declined",), 8))
#: The stage of the inbound workflow a received deal is moved to with each update.
STAGE_OF = {"accepted": "Contacted", "in-progress": "In progress", "won": "Settled", "lost": "Not proceeding",
            "declined": "Not proceeding"}
DISCLOSURE = "Summit Mortgage Brokers may share your contact details and loan needs with a partner you choose."
#: Where the peers' inboxes are: the discard port, where nothing answers (nothing is sent).
PEER_INBOX = f"http://127.0.0.1:9{INBOX_PATH}"


@dataclass(frozen=True)
class Peer:
    signing: SigningKey
    keys: PeerKeys
    connection_id: str
    agent: Person


def write_referrals(db: Database, config: Config, keys: KeyStore, scale: Scale, rng: random.Random,
                    now: datetime, progress: Callable[[str], None]) -> None:
    """The peers and connections, then the referrals sent and received, 500 a transaction."""
    start = now - timedelta(days=scale.days)
    brokers = db.run(lambda conn: [r[0] for r in conn.execute("SELECT id FROM users WHERE role = 'broker' ORDER BY id")])
    peers = db.run(lambda conn: _peers(conn, scale.peers, brokers, start))
    me = keys.node_id
    my_key = next(k.public for k in keys.decryption_keys.values() if k.crv == "X25519")
    suites = tuple(s for s, _, status in keys.encryption_entries if status == "active")
    known = {p.keys.node_id: p.keys for p in peers}

    def context(at: datetime) -> TxContext:
        return TxContext(me=me, keys=keys, config=config, now=at, suites=suites, effects=Effects(),
                         discovery=b"", peers=known)

    sent = round(scale.referrals * scale.sent_share)
    received = scale.referrals - sent
    deals = db.run(lambda conn: conn.execute("SELECT id, owner_user_id, created_at FROM deals"
                                             " WHERE origin = 'local' ORDER BY id").fetchall())
    chosen = rng.sample(deals, sent)
    batch = 500
    for first in range(0, sent, batch):
        db.run(lambda conn, part=chosen[first:first + batch]: [
            _send(conn, context, rng.choice(peers), row, me, my_key, rng, now) for row in part])
        progress(f"  referrals sent: {min(sent, first + batch)} of {sent}")
    for first in range(0, received, batch):
        count = min(batch, received - first)
        db.run(lambda conn, count=count: [_receive(conn, context, rng.choice(peers), me, my_key, rng, start, now)
                                          for _ in range(count)])
        progress(f"  referrals received: {first + count} of {received}")


def _peers(conn: sqlite3.Connection, count: int, brokers: list[str], at: datetime) -> list[Peer]:
    """Synthetic peers, each with a verified discovery document and an active connection
    whose referrals go to a few brokers in turn (or, on every third, to the workflow owner)."""
    peers = []
    for i in range(count):
        name = PEERS[i % len(PEERS)] + ("" if i < len(PEERS) else f" {i // len(PEERS) + 1}")
        identity, signing = SigningKey.from_seed(os.urandom(32)), SigningKey.from_seed(os.urandom(32))
        inbox = PEER_INBOX
        doc = build_discovery(name=name, inbox_url=inbox, identity=identity.public,
                              signing=[(signing.public, "active")],
                              encryption=[(SuiteId.X25519_CHACHA, DecryptionKey.x25519(os.urandom(32)), "active")],
                              now=at)
        raw = sign_discovery(doc, identity)
        _, keys = verify_discovery(raw, expected_node_id=identity.kid)
        ts = format_ts(at)
        store.upsert_peer(conn, node_id=keys.node_id, name=name, base_url=inbox.split("/refnode/", 1)[0],
                          inbox_url=inbox, discovery=raw,
                          signing_jwks={kid: k.jwk() for kid, k in keys.all_signing.items()}, now=ts)
        connection_id = new_id("con", at)
        domain = name.lower().replace(" ", "-") + ".example"
        team = [brokers[(i * 3 + k) % len(brokers)] for k in range(3)] if brokers else []
        settings = {"inbound": {"assignment": {"rule": "round_robin", "user_ids": team}}} if i % 3 and team else {}
        store.insert_connection(conn, Connection(
            id=connection_id, peer_node_id=keys.node_id, role="requester" if i % 2 else "responder",
            state="active", direction="both", name=name, invitation_id=None, target_email=None,
            requested_by=f"admin@{domain}", message="", settings=settings, created_at=ts, updated_at=ts))
        peers.append(Peer(signing, keys, connection_id, Person(name=f"{name.split()[0]} Agent",
                                                                  email=f"agent@{domain}")))
    return peers


def _seal(peer: Peer, me: str, my_key: EncryptionPublicKey, message_type: MessageType, message: WireModel,
          at: datetime) -> OpenedEnvelope:
    """An envelope from ``peer`` to us, as our inbox would have opened it."""
    envelope_id = new_id("env", at)
    routing = Routing(message_type, envelope_id, peer.keys.node_id, me, at)
    inner = sign_message(message, routing, peer.signing)
    sealed = seal(SuiteId.X25519_CHACHA, my_key, inner, hpke_info(peer.keys.node_id, me, envelope_id))
    body = sign_outer(sealed, routing, suite=SuiteId.X25519_CHACHA, enc_kid=my_key.kid, signing_key=peer.signing)
    return OpenedEnvelope(parse_envelope(body), message, peer.keys, inner, introduction=False,
                          inner_kid=peer.signing.kid)


def _inbox_row(conn: sqlite3.Connection, ctx: TxContext, opened: OpenedEnvelope) -> None:
    parsed = opened.parsed
    receipt = make_receipt(envelope_id=parsed.envelope_id, envelope_sha256=parsed.sha256, recipient=ctx.me,
                           sender=parsed.sender, disposition=Disposition.ACCEPTED, now=ctx.now,
                           signing_key=ctx.keys.signing)
    store.insert_inbox(conn, InboxItem(sender=parsed.sender, envelope_id=parsed.envelope_id, sha256=parsed.sha256,
                                       type=versioned(parsed.message_type), body=parsed.raw,
                                       inner=opened.inner_jws, receipt=receipt, received_at=ctx.ts))


def _last_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0])


def _delivered(conn: sqlite3.Connection, ctx: TxContext, peer: Peer, after_seq: int) -> None:
    """The peer's receipt for each item queued since ``after_seq`` (looked up by seq: a
    scan of the outbox by state would read every envelope's bytes)."""
    for (seq,) in conn.execute("SELECT seq FROM outbox WHERE seq > ? ORDER BY seq", (after_seq,)).fetchall():
        item = store.get_outbox(conn, seq)
        assert item is not None and item.state == "pending" and item.peer_node_id == peer.keys.node_id
        receipt = make_receipt(envelope_id=item.envelope_id, envelope_sha256=item.sha256,
                               recipient=peer.keys.node_id, sender=ctx.me, disposition=Disposition.ACCEPTED,
                               now=ctx.now, signing_key=peer.signing)
        assert store.mark_delivered(conn, item, receipt=receipt, now=ctx.ts)
        referrals.on_delivered(conn, ctx, item)


def _steps(rng: random.Random, start: datetime, now: datetime) -> tuple[tuple[str, ...], list[datetime]]:
    """The updates a referral gets, and the moment of each (after ``start``, before ``now``)."""
    path = rng.choices([p for p, _ in OUTCOMES], weights=[w for _, w in OUTCOMES])[0]
    moments, at = [], start
    for _ in path:
        at = min(now - timedelta(minutes=5), at + timedelta(hours=rng.uniform(2, 24 * 12)))
        moments.append(at)
    return path, moments


def _send(conn: sqlite3.Connection, context: Any, peer: Peer, deal: Any, me: str, my_key: EncryptionPublicKey,
          rng: random.Random, now: datetime) -> None:
    created = datetime.fromisoformat(deal["created_at"].replace("Z", "+00:00"))
    at = min(now - timedelta(hours=2), created + timedelta(hours=rng.uniform(1, 24 * 20)))
    ctx = context(at)
    contacts = [c.contact_id for c in crm.get_deal(conn, deal["id"]).contacts]
    body = ReferDealIn(connection_id=peer.connection_id, message=rng.choice((
        "", "Happy to join a first call.", "They would like to settle before the end of the month.")),
        consent=ConsentIn(contact_ids=contacts, method=rng.choice(("verbal", "written", "electronic")),
                          disclosure_version="summit-privacy-2026-01", disclosure_text=DISCLOSURE,
                          consented_at=at - timedelta(hours=1)))
    before = _last_seq(conn)
    local_id = refer_deal(conn, ctx, deal["id"], body, crm.get_user(conn, deal["owner_user_id"]))["referral"]["local_id"]
    _delivered(conn, context(at + timedelta(seconds=2)), peer, before)
    referral = store.get_referral_local(conn, local_id)
    assert referral is not None
    path, moments = _steps(rng, at, now)
    for seq, (status, when) in enumerate(zip(path, moments, strict=True), start=1):
        update = ReferralStatus(referral_id=referral.id, seq=seq, status=status,  # type: ignore[arg-type]
                                stage=STAGE_OF[status] if status == "in-progress" else None,
                                reason="The client chose another lender." if status in ("lost", "declined") else None,
                                at=format_ts(when))
        ctx = context(when)
        opened = _seal(peer, me, my_key, MessageType.REFERRAL_STATUS, update, when)
        assert referrals.on_status(conn, ctx, opened) is Disposition.ACCEPTED
        _inbox_row(conn, ctx, opened)


def _receive(conn: sqlite3.Connection, context: Any, peer: Peer, me: str, my_key: EncryptionPublicKey,
             rng: random.Random, start: datetime, now: datetime) -> None:
    at = start + timedelta(seconds=rng.uniform(0, (now - start).total_seconds() - 86400))
    suburb, region, postcode = rng.choice(PLACES)
    street = f"{rng.randint(1, 240)} {rng.choice(STREETS)} Road, {suburb}"
    refs = [new_id("ct", at) for _ in range(1 if rng.random() < 0.6 else 2)]
    contacts = [ContactProfile(ref=ref, role="primary" if n == 0 else "co-applicant", first_name=rng.choice(FIRST),
                               last_name=rng.choice(LAST), email=f"client.{ref[-10:]}@example.com",
                               phone=f"+61 4{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}")
                for n, ref in enumerate(refs)]
    offer = ReferralOffer(
        referral_id=new_id("rfl", at), connection_id=peer.connection_id, referral_type="mortgage",
        deal=DealSummary(title=f"Purchase at {street}", deal_type="purchase",
                         amount=f"{rng.randint(300, 1900) * 1000}.00", currency="AUD",
                         summary=f"Buying in {suburb}, {region} {postcode}; contract exchanged."),
        contacts=contacts, shared_fields=sorted(SHAREABLE_FIELDS), owner=peer.agent, referring_agent=peer.agent,
        message=rng.choice(("", "Please call them this week.", "They prefer e-mail.")),
        consent=Consent(contact_refs=refs, consented_at=format_ts(at - timedelta(hours=1)), method="written",
                        disclosure_version="partner-privacy-2026", disclosure_sha256="n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg",
                        recorded_by=peer.agent),
        sent_at=format_ts(at))
    ctx = context(at)
    opened = _seal(peer, me, my_key, MessageType.REFERRAL_OFFER, offer, at)
    assert referrals.on_offer(conn, ctx, opened, lander=land_offer) is Disposition.ACCEPTED
    _inbox_row(conn, ctx, opened)
    referral = store.get_referral(conn, "receiver", peer.keys.node_id, offer.referral_id)
    assert referral is not None and referral.deal_id is not None
    workflow = crm.get_deal(conn, referral.deal_id).workflow_id
    stages = {s.name: s.id for s in crm.get_workflow(conn, workflow).stages}
    path, moments = _steps(rng, at, now)
    for status, when in zip(path, moments, strict=True):
        ctx = context(when)
        stage = STAGE_OF[status]
        before = _last_seq(conn)
        referrals.report_status(conn, ctx, referral.local_id, status, stage=stage if status == "in-progress" else None,
                                reason="Not a fit for our lenders." if status == "declined" else None)
        crm.move_deal(conn, referral.deal_id, stages[stage], now=when)
        _delivered(conn, context(when + timedelta(seconds=2)), peer, before)
