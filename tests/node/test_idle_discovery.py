"""A node serves the discovery document it signed before (node.federation.own_discovery):
a real ``refnode serve`` process that has answered discovery requests has not loaded
cryptography's Rust bindings, serves the same bytes after a restart, and a new document,
issued later, after a key rotation. With inbox fronts too, which answer discovery as well."""

from __future__ import annotations

import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import make_config
from procs import ProcNode, child_pids, make_proc_node

from node.base.keystore import KeyStore
from node.cli.setup import init_node
from node.federation import own_discovery
from protocol.discovery import verify_discovery

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
