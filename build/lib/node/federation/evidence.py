"""Offline checks of what we hold as proof: every stored receipt must verify against the
peer's signing keys as we pinned them, and name the exact bytes we sent."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace

from node.storage import store
from protocol import jws
from protocol.discovery import PeerKeys, verify_discovery
from protocol.envelope import digest
from protocol.errors import ProtocolError
from protocol.keys import VerifyKey
from protocol.receipts import verify_receipt
from protocol.wire import TYP_RECEIPT


@dataclass(frozen=True)
class ReceiptCheck:
    seq: int
    envelope_id: str
    peer_node_id: str
    ok: bool
    disposition: str | None
    problem: str | None


def _peer_keys(conn: sqlite3.Connection, peer_node_id: str) -> PeerKeys | None:
    """A peer's signing keys as we pinned them, with every key it rotated away from."""
    peer = store.get_peer(conn, peer_node_id)
    if peer is None:
        return None
    _, keys = verify_discovery(peer.discovery, expected_node_id=peer.node_id)
    history = store.peer_key_history(conn, peer.node_id)
    return keys.with_history(VerifyKey.from_jwk(j) for j in history)


def verify_receipts(conn: sqlite3.Connection, me: str,
                    checked: Callable[[int, int], None] | None = None) -> list[ReceiptCheck]:
    """Every stored receipt, checked; ``checked(done, total)`` is told as they go."""
    results: list[ReceiptCheck] = []
    total = conn.execute("SELECT count(*) FROM outbox WHERE state = 'delivered'").fetchone()[0] if checked else 0
    keys_by_peer: dict[str, PeerKeys] = {}
    for done, item in enumerate(store.list_outbox(conn, state="delivered", limit=10**9)):
        if checked is not None and done % 100 == 0:
            checked(done, total)
        keys = keys_by_peer.get(item.peer_node_id)
        if keys is None:
            keys = _peer_keys(conn, item.peer_node_id)
            if keys is None:
                results.append(ReceiptCheck(item.seq, item.envelope_id, item.peer_node_id, False, None, "peer unknown"))
                continue
            keys_by_peer[item.peer_node_id] = keys
        try:
            receipt = verify_receipt(item.receipt or b"", keys=keys, envelope_id=item.envelope_id,
                                     envelope_sha256=item.sha256, sender=me)
            results.append(ReceiptCheck(item.seq, item.envelope_id, item.peer_node_id, True,
                                        receipt.disposition.value, None))
        except ProtocolError as exc:
            results.append(ReceiptCheck(item.seq, item.envelope_id, item.peer_node_id, False, None,
                                        f"{exc.code.value}: {exc.message}"))
    return results


@dataclass(frozen=True)
class DeliveryProof:
    """The receipt of a referral's offer, checked again now (not as it was on arrival)."""

    verified: bool
    envelope_id: str
    #: The SHA-256 of the exact envelope we sent, as the receipt names it (base64url).
    envelope_sha256: str
    #: The SHA-256 of the receipt itself, to quote it.
    receipt_sha256: str
    delivered_at: str | None
    received_at: str | None
    disposition: str | None
    signed_with: str | None
    problem: str | None


def referral_receipt(conn: sqlite3.Connection, me: str, local_id: str) -> DeliveryProof | None:
    """The delivery receipt of a referral we sent, verified now against the receiver's
    pinned keys and the bytes we sent; None while there is none."""
    items = [i for i in store.list_outbox(conn, state="delivered", subject_id=local_id)
             if i.type.startswith("referral-offer/") and i.receipt]
    if not items:
        return None
    item = items[0]  # newest: a re-sealed offer's receipt names the envelope that went
    raw = item.receipt or b""
    proof = DeliveryProof(False, item.envelope_id, item.sha256, digest(raw), item.delivered_at, None, None, None,
                          None)
    keys = _peer_keys(conn, item.peer_node_id)
    if keys is None:
        return replace(proof, problem="the receiving node is not known here")
    try:
        receipt = verify_receipt(raw, keys=keys, envelope_id=item.envelope_id, envelope_sha256=item.sha256, sender=me)
    except ProtocolError as exc:
        return replace(proof, problem=f"{exc.code.value}: {exc.message}")
    return replace(proof, verified=True, received_at=receipt.received_at, disposition=receipt.disposition.value,
                   signed_with=jws.parse_flattened(raw, typ=TYP_RECEIPT).kid)
