"""A peer's key set with the keys it has retired (spec 4.6: a receipt stays verifiable after
its key is rotated out). ``PeerKeys.with_history`` adds the older keys for verifying old
signatures and changes nothing else: the active keys, the endpoints, the suites, the
envelope limit and the identity are still those of the current discovery document."""

from __future__ import annotations

from dataclasses import fields

import pytest
from protocol_support import NODES

from node.codegen.vector_inputs import NOW, derive
from protocol.discovery import build_discovery, sign_discovery, verify_discovery
from protocol.errors import RemoteProtocolError
from protocol.keys import SigningKey
from protocol.suites import SuiteId

A = NODES["A"]


def test_history_adds_the_retired_keys_and_keeps_everything_else() -> None:
    doc = build_discovery(
        name="A", inbox_url=A.inbox_url, identity=A.identity.public, signing=[(A.signing.public, "active")],
        encryption=[(SuiteId.X25519_CHACHA, A.x25519, "active")], now=NOW, max_envelope_bytes=300_000,
    )  # fmt: skip
    _, keys = verify_discovery(sign_discovery(doc, A.identity), expected_node_id=A.node_id)
    retired = SigningKey.from_seed(derive("A/signing retired", 32)).public
    merged = keys.with_history([retired, A.signing.public])

    for name in (f.name for f in fields(keys) if f.name != "all_signing"):
        assert getattr(merged, name) == getattr(keys, name), name
    assert merged.max_envelope_bytes == 300_000 and merged.identity == A.identity.public
    assert set(merged.all_signing) == set(keys.all_signing) | {retired.kid}
    assert merged.all_signing[A.signing.kid] is keys.all_signing[A.signing.kid]  # the current key wins
    # a retired key checks old signatures only: it signs nothing new
    assert merged.signing_key(A.signing.kid) == A.signing.public
    with pytest.raises(RemoteProtocolError) as caught:
        merged.signing_key(retired.kid)
    assert caught.value.code.value == "unknown_key"
