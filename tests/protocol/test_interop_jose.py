"""Interoperability with an independent JOSE library (joserfc): it verifies what we sign,
and we accept what it signs, although it writes its headers in another member order."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from joserfc import jws as jose
from joserfc.jwk import OKPKey
from protocol_support import NODES, PEERS, A, B, load_vector, open_as_b

from node.codegen.vector_inputs import NOW, referral_offer
from protocol.encoding import b64u_encode, dumps_canonical
from protocol.envelope import parse_envelope, verify_outer
from protocol.errors import RemoteProtocolError
from protocol.keys import SigningKey
from protocol.messages import ReferralOffer
from protocol.models import format_ts
from protocol.receipts import verify_receipt
from protocol.suites import SuiteId, hpke_info, seal
from protocol.wire import TYP_ENVELOPE, TYP_INNER, ErrorCode

ALGS = ["Ed25519"]


def registry() -> jose.JWSRegistry:
    reg = jose.JWSRegistry(algorithms=ALGS, strict_check_header=False)
    reg.max_header_length = 4096
    return reg


def public(key: SigningKey) -> OKPKey:
    return OKPKey.import_key(key.public.jwk())


def private(key: SigningKey) -> OKPKey:
    return OKPKey.import_key(dict(key.public.jwk(), d=b64u_encode(key.seed())))


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jose_verify_flattened(raw: str | bytes, key: SigningKey) -> Any:
    return jose.deserialize_json(json.loads(raw), public(key), algorithms=ALGS, registry=registry())


# --- joserfc verifies what we sign -----------------------------------------------------


@pytest.mark.parametrize("suite", list(SuiteId))
def test_joserfc_verifies_our_envelopes_outer_and_inner(suite: SuiteId) -> None:
    vector = next(
        v for v in load_vector("envelopes-decrypt-only.json")["vectors"] if v["suite"] == suite
    )
    outer = jose_verify_flattened(vector["envelope"], A.signing)
    assert outer.headers()["typ"] == TYP_ENVELOPE and outer.headers()["rn_to"] == B.node_id
    inner = jose.deserialize_compact(
        vector["inner_jws"], public(A.signing), algorithms=ALGS, registry=registry()
    )
    assert inner.protected["typ"] == TYP_INNER
    assert json.loads(inner.payload) == referral_offer().wire()
    # ... and refuses them under another key, so the check above is a real one.
    with pytest.raises(Exception):  # noqa: B017 - joserfc's own error type
        jose_verify_flattened(vector["envelope"], B.signing)


def test_joserfc_verifies_our_receipts_and_discovery_documents() -> None:
    for case in load_vector("receipts.json")["receipts"].values():
        obj = jose_verify_flattened(case["receipt"], B.signing)
        assert json.loads(obj.payload) == case["payload"]
    documents = load_vector("discovery.json")["documents"]
    assert len(documents) == 3
    for doc in documents:
        obj = jose_verify_flattened(doc["signed"], NODES[doc["node"]].identity)
        assert json.loads(obj.payload) == doc["document"]
        assert obj.headers()["kid"] == doc["expected"]["node_id"]


# --- we accept what joserfc signs ------------------------------------------------------


def _jose_envelope(message: ReferralOffer, envelope_id: str) -> bytes:
    """A whole envelope whose two signatures joserfc makes; HPKE sealing is ours."""
    routing = {  # deliberately not in sorted order: we must verify the bytes as received
        "rn_type": "referral-offer/1.0",
        "rn_to": B.node_id,
        "rn_id": envelope_id,
        "rn_iat": format_ts(NOW),
        "rn_from": A.node_id,
    }
    key = private(A.signing)
    inner = jose.serialize_compact(
        {"typ": TYP_INNER, "alg": "Ed25519", "kid": A.signing.kid, **routing},
        json.dumps(message.wire(), indent=1).encode(),  # not our canonical form either
        key, algorithms=ALGS, registry=registry(),
    )  # fmt: skip
    enc = B.x25519.public
    sealed = seal(
        SuiteId.X25519_CHACHA, enc, inner.encode(), hpke_info(A.node_id, B.node_id, envelope_id)
    )
    header = {
        "kid": A.signing.kid, "alg": "Ed25519", "typ": TYP_ENVELOPE, "rn_v": 1,
        "rn_suite": SuiteId.X25519_CHACHA.value, "rn_enc_kid": enc.kid, **routing,
    }  # fmt: skip
    outer = jose.serialize_json(
        {"protected": header}, sealed, key, algorithms=ALGS, registry=registry()
    )
    assert set(outer) == {"protected", "payload", "signature"}
    return json.dumps(dict(outer)).encode()


def test_we_open_an_envelope_signed_by_joserfc() -> None:
    raw = _jose_envelope(referral_offer(), "env-jose-1")
    # joserfc kept our member order, so these header bytes are not our canonical form.
    assert b'"rn_type":"referral-offer/1.0","rn_to"' in unb64u(json.loads(raw)["protected"])
    opened = open_as_b(raw)
    assert opened.message == referral_offer()
    assert opened.parsed.envelope_id == "env-jose-1"


def test_we_refuse_a_joserfc_envelope_signed_with_the_wrong_key() -> None:
    raw = json.loads(_jose_envelope(referral_offer(), "env-jose-2"))
    forged = jose.serialize_json(
        {"protected": json.loads(unb64u(raw["protected"]))},
        unb64u(raw["payload"]),
        private(B.signing), algorithms=ALGS, registry=registry(),
    )  # fmt: skip
    parsed = parse_envelope(json.dumps(dict(forged)).encode())
    with pytest.raises(RemoteProtocolError) as caught:
        verify_outer(parsed, PEERS["A"])
    assert caught.value.code is ErrorCode.BAD_SIGNATURE


def test_we_verify_a_receipt_signed_by_joserfc() -> None:
    payload = load_vector("receipts.json")["receipts"]["accepted"]["payload"]
    signed = jose.serialize_json(
        {"protected": {"typ": "refnode-receipt+jws", "kid": B.signing.kid, "alg": "Ed25519"}},
        dumps_canonical(payload), private(B.signing), algorithms=ALGS, registry=registry(),
    )  # fmt: skip
    receipt = verify_receipt(json.dumps(dict(signed)).encode(), keys=PEERS["B"])
    assert receipt.wire() == payload
