"""A node serves the discovery document it signed before (node.federation.own_discovery):
a real ``refnode serve`` process that has answered discovery requests has not loaded
cryptography's Rust bindings, serves the same bytes after a restart, and a new document,
issued later, after a key rotation. With inbox fronts too, which answer discovery as well.
A node with a peer in its database starts without them too: the peer's stored document is
read, not verified again, and its keys are usable all the same."""

from __future__ import annotations

import hashlib
import sqlite3
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import make_config
from procs import ProcNode, child_pids, make_proc_node

from node.base.keystore import KeyStore
from node.cli.setup import init_node
from node.federation import own_discovery
from node.storage import store
from node.storage.db import Database
from node.storage.records import Connection
from protocol.discovery import build_discovery, sign_discovery, verify_discovery
from protocol.envelope import seal_envelope
from protocol.keys import DecryptionKey, SigningKey
from protocol.messages import Disconnect
from protocol.models import format_ts
from protocol.receipts import verify_receipt
from protocol.suites import SuiteId
from protocol.wire import INBOX_PATH, MEDIA_TYPE_JOSE_JSON, Disposition, MessageType

#: cryptography's Rust bindings, as they appear in a process's memory map.
RUST_BINDINGS = "cryptography/hazmat/bindings/_rust"


def discovery(node: ProcNode) -> bytes:
    with urllib.request.urlopen(node.url + "/.well-known/refnode", timeout=5) as response:  # noqa: S310
        return bytes(response.read())


def served(node: ProcNode, times: int = 6) -> set[bytes]:
    """What the node's processes answer (with fronts, each request may reach another one)."""
    return {discovery(node) for _ in range(times)}


def with_rust_bindings(node: ProcNode) -> list[int]:
    assert node.proc is not None
    pids = [node.proc.pid, *child_pids(node.proc.pid)]
    return [pid for pid in pids if RUST_BINDINGS in Path(f"/proc/{pid}/maps").read_text()]


@pytest.mark.parametrize("inbox_workers", [0, 2], ids=["alone", "fronts"])
def test_the_discovery_document_is_signed_once_and_served_as_kept(tmp_path: Path, inbox_workers: int) -> None:
    node = make_proc_node(tmp_path, "Kept", inbox_workers=inbox_workers)
    try:
        node.start()
        first = served(node)
        assert len(first) == 1
        assert with_rust_bindings(node) == []
        doc, _ = verify_discovery(next(iter(first)))
        node_id = doc.node_id

        node.stop()
        time.sleep(1)  # a document signed now would be issued later, and differ
        node.start()
        assert served(node) == first  # the same bytes, issued_at and all
        assert with_rust_bindings(node) == []

        status, body = node.api("POST", "/api/v1/keys/rotate")
        assert status == 200, body
        deadline = time.monotonic() + 10
        while len(now := served(node)) != 1 or now == first:  # fronts reload a moment later
            assert time.monotonic() < deadline, "the rotation's document is not served"
            time.sleep(0.1)
        (rotated,) = now
        new, peer = verify_discovery(rotated, expected_node_id=node_id)
        assert new.issued_at > doc.issued_at
        assert set(peer.signing) == {body["signing_kid"]}

        node.stop()
        node.start()
        assert served(node) == {rotated}
    finally:
        node.stop()


def test_what_the_document_is_made_of_decides_whether_it_is_signed_again(tmp_path: Path) -> None:
    config = make_config(tmp_path, "Made")
    init_node(config, admin_email="admin@made.example", admin_name="Made Admin")
    keys = KeyStore.load(config.keys_dir, None)
    kept = own_discovery.stored(config, keys)
    assert kept is not None  # refnode init signed it
    issued = datetime.fromisoformat(verify_discovery(kept)[0].issued_at)
    for change in ({"org_name": "Renamed"}, {"public_url": "https://made.example"},
                   {"max_envelope_bytes": config.max_envelope_bytes * 2}):
        assert own_discovery.stored(config.model_copy(update=change), keys) is None
    keys.rotate_signing()  # as a rotation that did not sign (cut short) would leave it
    assert own_discovery.stored(config, KeyStore.load(config.keys_dir, None)) is None

    # A new document is issued later than the last one, even if the clock went back.
    raw = own_discovery.sign(config, keys, issued - timedelta(hours=1))
    new, _ = verify_discovery(raw)
    assert datetime.fromisoformat(new.issued_at) == issued + timedelta(seconds=1)
    assert own_discovery.stored(config, KeyStore.load(config.keys_dir, None)) == raw


def test_a_node_with_a_peer_starts_without_cryptography_and_knows_the_peer(tmp_path: Path) -> None:
    node = make_proc_node(tmp_path, "Peered")
    identity, signing = (SigningKey.from_seed(hashlib.sha256(b"peer " + w).digest()) for w in (b"id", b"sig"))
    now = datetime.now(UTC)
    doc = build_discovery(
        name="Stored Peer", inbox_url=f"http://127.0.0.1:9{INBOX_PATH}", identity=identity.public,
        signing=[(signing.public, "active")],
        encryption=[(SuiteId.X25519_CHACHA, DecryptionKey.x25519(b"\x07" * 32), "active")], now=now,
    )
    raw = sign_discovery(doc, identity)
    peer_id, ts = identity.kid, format_ts(now)

    def write(conn: sqlite3.Connection) -> None:  # as a finished handshake leaves it
        store.upsert_peer(conn, node_id=peer_id, name="Stored Peer", base_url="http://127.0.0.1:9",
                          inbox_url=doc.endpoints.inbox, discovery=raw,
                          signing_jwks={k.kid: k.jwk() for k in (identity.public, signing.public)}, now=ts)
        store.insert_connection(conn, Connection(
            id="con_storedpeer", peer_node_id=peer_id, role="responder", state="active", direction="receive",
            name="Stored Peer", invitation_id=None, target_email=None, requested_by="admin@peer.example",
            message="", settings={}, created_at=ts, updated_at=ts))

    db = Database(node.config.database_path)
    try:
        db.run(write)
    finally:
        db.close_sync()
    try:
        node.start()
        mine = served(node)
        assert with_rust_bindings(node) == []

        # The peer was loaded at start (the inbox knows only loaded peers), and its keys,
        # read from the stored document, verify its envelope.
        _, me = verify_discovery(next(iter(mine)))
        envelope = seal_envelope(
            Disconnect(connection_id="con_storedpeer", reason="test"), message_type=MessageType.DISCONNECT,
            envelope_id="env_storedpeer1", sender=peer_id, recipient=me.node_id, now=datetime.now(UTC),
            signing_key=signing, suite=SuiteId.X25519_CHACHA,
            recipient_key=next(k for s, k in me.encryption if s is SuiteId.X25519_CHACHA),
        )
        request = urllib.request.Request(  # noqa: S310
            node.url + INBOX_PATH, data=envelope, method="POST", headers={"Content-Type": MEDIA_TYPE_JOSE_JSON})
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            receipt = verify_receipt(response.read(), keys=me, envelope_id="env_storedpeer1", sender=peer_id)
        assert receipt.disposition == Disposition.ACCEPTED.value
    finally:
        node.stop()
