"""The keys of a discovery document (spec 4.7 and 4.8, steps 6 and 9): how each JWK is
loaded, which entry is the identity key, and the status each entry is published with.
A JWK is loaded for its use only: an Ed25519 key for signing, an X25519 or hybrid key of
the length of its curve for encryption; anything else is ``malformed``."""

from __future__ import annotations

from typing import Any

import pytest
from protocol_support import NODES

from node.codegen.vector_inputs import NOW, derive
from protocol import jws
from protocol.discovery import build_discovery, sign_discovery, verify_discovery
from protocol.encoding import b64u_encode, dumps_canonical, loads_object
from protocol.errors import RemoteProtocolError
from protocol.keys import EncryptionPublicKey, SigningKey, VerifyKey
from protocol.suites import SuiteId
from protocol.wire import TYP_DISCOVERY

A = NODES["A"]
X32 = b64u_encode(bytes(range(32)))
HYBRID = A.hybrid.public.jwk()["x"]  # 1,216 bytes: ML-KEM-768's 1,184, then X25519's 32


def _malformed(action: Any) -> str:
    with pytest.raises(RemoteProtocolError) as caught:
        action()
    assert caught.value.code.value == "malformed"
    return caught.value.message


def test_a_signing_jwk_of_ed25519_loads() -> None:
    assert VerifyKey.from_jwk(
        {"kty": "OKP", "crv": "Ed25519", "x": X32}
    ).key.public_bytes_raw() == bytes(range(32))


@pytest.mark.parametrize(("kty", "crv"), [("EC", "Ed25519"), ("OKP", "X25519"), ("RSA", "X25519")])
def test_a_signing_jwk_must_be_an_ed25519_okp_key(kty: str, crv: str) -> None:
    message = _malformed(lambda: VerifyKey.from_jwk({"kty": kty, "crv": crv, "x": X32}))
    assert message == "signing key must be an Ed25519 OKP JWK"


def test_encryption_jwks_of_each_curve_load() -> None:
    assert EncryptionPublicKey.from_jwk({"kty": "OKP", "crv": "X25519", "x": X32}).crv == "X25519"
    assert (
        EncryptionPublicKey.from_jwk({"kty": "OKP", "crv": "MLKEM768-X25519", "x": HYBRID}).kid
        == A.hybrid.kid
    )


@pytest.mark.parametrize(
    ("crv", "x"),
    [("MLKEM768-X25519", X32), ("X448", X32), ("X25519", HYBRID)],
    ids=["hybrid of 32 bytes", "X448 of 32 bytes", "X25519 of the hybrid's length"],
)
def test_an_encryption_jwk_needs_the_length_of_its_curve(crv: str, x: str) -> None:
    message = _malformed(lambda: EncryptionPublicKey.from_jwk({"kty": "OKP", "crv": crv, "x": x}))
    assert message == f"unusable encryption key (crv {crv!r})"


def test_a_jwk_whose_x_is_not_base64url_is_refused_naming_jwk_x() -> None:
    sig = {"kty": "OKP", "crv": "Ed25519", "x": X32[:-1] + "!"}
    enc = {"kty": "OKP", "crv": "X25519", "x": X32[:-1] + "!"}
    assert _malformed(lambda: VerifyKey.from_jwk(sig)) == "jwk.x is not base64url"
    assert _malformed(lambda: EncryptionPublicKey.from_jwk(enc)) == "jwk.x is not base64url"


def _payload() -> dict[str, Any]:
    return loads_object(jws.parse_flattened(A.discovery(), typ=TYP_DISCOVERY).payload)


def _signed(payload: dict[str, Any]) -> bytes:
    return jws.sign_flattened({"typ": TYP_DISCOVERY}, dumps_canonical(payload), A.identity)


def test_the_identity_key_may_be_listed_after_the_others() -> None:
    """It SHOULD come first (4.7), but it is the sig entry whose kid is the node id."""
    payload = _payload()
    identity, *others = payload["keys"]
    assert identity["kid"] == A.node_id and others[0]["use"] == "sig"
    payload["keys"] = [*others, identity]
    _, keys = verify_discovery(_signed(payload), expected_node_id=A.node_id)
    assert keys.identity == A.identity.public and set(keys.signing) == {A.signing.kid}


def test_a_discovery_document_without_its_identity_key_is_malformed() -> None:
    payload = _payload()
    payload["keys"] = [k for k in payload["keys"] if k["kid"] != A.node_id]
    message = _malformed(lambda: verify_discovery(_signed(payload), expected_node_id=A.node_id))
    assert message == "discovery lists no identity key"


def test_a_retired_signing_key_is_published_retired() -> None:
    retired = SigningKey.from_seed(derive("A/signing retired", 32)).public
    doc = build_discovery(
        name="A", inbox_url=A.inbox_url, identity=A.identity.public,
        signing=[(A.signing.public, "active"), (retired, "retired")],
        encryption=[(SuiteId.X25519_CHACHA, A.x25519, "active")], now=NOW,
    )  # fmt: skip
    assert [(k.kid, k.status) for k in doc.keys if k.use == "sig"] == [
        (A.node_id, "active"), (A.signing.kid, "active"), (retired.kid, "retired"),
    ]  # fmt: skip
    _, keys = verify_discovery(sign_discovery(doc, A.identity), expected_node_id=A.node_id)
    assert set(keys.signing) == {A.signing.kid}  # it signs nothing new
    assert keys.all_signing[retired.kid] == retired  # but old signatures still verify
