"""Offline checks of what we hold as proof: every stored receipt must verify against the
peer's signing keys as we pinned them, and name the exact bytes we sent."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from node.storage import store
from protocol.discovery import verify_discovery
from protocol.errors import ProtocolError
from protocol.keys import VerifyKey
from protocol.receipts import verify_receipt


@dataclass(frozen=True)
class ReceiptCheck:
    seq: int
    envelope_id: str
    peer_node_id: str
    ok: bool
    disposition: str | None
    problem: str | None


def verify_receipts(conn: sqlite3.Connection, me: str,
                    checked: Callable[[int, int], None] | None = None) -> list[ReceiptCheck]:
    """Every stored receipt, checked; ``checked(done, total)`` is told as they go."""
    results: list[ReceiptCheck] = []
    total = conn.execute("SELECT count(*) FROM outbox WHERE state = 'delivered'").fetchone()[0] if checked else 0
    keys_by_peer = {}
    for done, item in enumerate(store.list_outbox(conn, state="delivered", limit=10**9)):
        if checked is not None and done % 100 == 0:
            checked(done, total)
        keys = keys_by_peer.get(item.peer_node_id)
        if keys is None:
            peer = store.get_peer(conn, item.peer_node_id)
            if peer is None:
                results.append(ReceiptCheck(item.seq, item.envelope_id, item.peer_node_id, False, None, "peer unknown"))
                continue
            _, keys = verify_discovery(peer.discovery, expected_node_id=peer.node_id)
            history = store.peer_key_history(conn, peer.node_id)
            keys = keys.with_history(VerifyKey.from_jwk(j) for j in history)
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
