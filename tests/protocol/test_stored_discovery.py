"""protocol.discovery.stored_discovery reads a discovery document that was verified before
it was stored: the same keys as verify_discovery gives, with no cryptography key object made
yet (a node loading its peers at start needs none, issue 16), and the checks other than the
signature's as before. A document from the wire still has its keys' bytes checked at once."""

from __future__ import annotations

import pytest
from protocol_support import NODES

from node.codegen.vector_inputs import NOW
from protocol.discovery import build_discovery, sign_discovery, stored_discovery, verify_discovery
from protocol.encoding import b64u_encode
from protocol.errors import RemoteProtocolError
from protocol.keys import DecryptionKey, EncryptionPublicKey, jwk_thumbprint
from protocol.suites import SuiteId

A, B = NODES["A"], NODES["B"]
X, HYBRID = SuiteId.X25519_CHACHA, SuiteId.MLKEM768X25519_CHACHA


def _signed(encryption: list[tuple[SuiteId, DecryptionKey | EncryptionPublicKey, str]]) -> bytes:
    doc = build_discovery(
        name="A", inbox_url=A.inbox_url, identity=A.identity.public,
        signing=[(A.signing.public, "active")], encryption=encryption, now=NOW,
    )  # fmt: skip
    return sign_discovery(doc, A.identity)


def test_a_stored_document_gives_the_verified_keys_with_no_key_object_made() -> None:
    raw = _signed([(X, A.x25519, "active"), (HYBRID, A.hybrid, "active")])
    verified = verify_discovery(raw, expected_node_id=A.identity.kid)
    stored = stored_discovery(raw, node_id=A.identity.kid)
    assert stored == verified
    _, keys = stored
    made = [k for k in (*keys.all_signing.values(), *(e for _, e in keys.encryption)) if "key" in vars(k)]
    assert made == []
    with pytest.raises(RemoteProtocolError) as caught:
        stored_discovery(raw, node_id=B.identity.kid)
    assert caught.value.code.value == "fingerprint_mismatch"


def test_an_ml_kem_key_cryptography_refuses_is_malformed_from_the_wire() -> None:
    good = A.hybrid.public.raw
    bad = b"\xff\xff" + good[2:]  # a coefficient of 4095, not below q = 3329 (FIPS 203 7.2)
    jwk = {"kty": "OKP", "crv": "MLKEM768-X25519", "x": b64u_encode(bad)}
    key = EncryptionPublicKey(jwk_thumbprint(jwk), "MLKEM768-X25519", bad)
    with pytest.raises(RemoteProtocolError) as caught:
        EncryptionPublicKey.from_jwk(jwk)
    assert caught.value.code.value == "malformed"
    with pytest.raises(RemoteProtocolError) as caught:
        verify_discovery(_signed([(X, A.x25519, "active"), (HYBRID, key, "active")]))
    assert caught.value.code.value == "malformed"
    assert EncryptionPublicKey.from_jwk(jwk, trusted=True) == key  # told at its first use instead
