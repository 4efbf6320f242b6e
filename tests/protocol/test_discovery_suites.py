"""Spec 4.7 and 4.8 step 12: a discovery document's ``suites`` lists exactly the suites of
its active encryption keys, each once, in key order; anything else is malformed. Before,
4.7 said MUST and verification checked nothing (issue 15, gap 9)."""

from __future__ import annotations

import pytest
from protocol_support import NODES, load_vector

from node.codegen.vector_inputs import NOW, derive
from protocol import jws
from protocol.discovery import build_discovery, sign_discovery, verify_discovery
from protocol.encoding import dumps_canonical, loads_object
from protocol.errors import RemoteProtocolError
from protocol.keys import DecryptionKey
from protocol.suites import SuiteId
from protocol.wire import TYP_DISCOVERY

X, HYBRID = SuiteId.X25519_CHACHA, SuiteId.MLKEM768X25519_CHACHA
A = NODES["A"]


def _signed(encryption: list[tuple[SuiteId, DecryptionKey, str]]) -> bytes:
    doc = build_discovery(
        name="A", inbox_url=A.inbox_url, identity=A.identity.public,
        signing=[(A.signing.public, "active")], encryption=encryption, now=NOW,
    )  # fmt: skip
    return sign_discovery(doc, A.identity)


def test_the_suites_vectors_fail_for_their_suites() -> None:
    cases = [
        c for c in load_vector("discovery.json")["must_reject"] if c["name"].startswith("suites")
    ]
    assert len(cases) == 3
    for case in cases:
        with pytest.raises(RemoteProtocolError) as caught:
            verify_discovery(case["signed"].encode(), expected_node_id=case["expected_node_id"])
        assert caught.value.code.value == "malformed" == case["error"]
        assert caught.value.detail["expected"] == [HYBRID.value, X.value]


def test_suites_follow_the_active_keys_in_order_each_once() -> None:
    second_x = DecryptionKey.x25519(derive("A/x25519 second", 32))
    doc, keys = verify_discovery(
        _signed([(X, A.x25519, "active"), (HYBRID, A.hybrid, "active"), (X, second_x, "active")])
    )
    assert doc.suites == [X, HYBRID]
    assert [s for s, _ in keys.encryption] == [X, HYBRID, X]
    doc, _ = verify_discovery(_signed([(HYBRID, A.hybrid, "retired"), (X, A.x25519, "active")]))
    assert doc.suites == [X]  # a retired key's suite is not offered


def test_a_suite_without_an_active_key_is_malformed() -> None:
    raw = _signed([(HYBRID, A.hybrid, "retired"), (X, A.x25519, "active")])
    payload = loads_object(jws.parse_flattened(raw, typ=TYP_DISCOVERY).payload)
    payload["suites"] = [HYBRID.value, X.value]
    forged = jws.sign_flattened({"typ": TYP_DISCOVERY}, dumps_canonical(payload), A.identity)
    with pytest.raises(RemoteProtocolError) as caught:
        verify_discovery(forged)
    assert caught.value.code.value == "malformed" and "suites" in caught.value.message


def test_the_suite_chosen_is_one_we_enable_and_the_peer_offers() -> None:
    """6.3: the first suite of our preference that we enable and the peer has a key for;
    a suite only one side has is never chosen."""
    from protocol.errors import LocalProtocolError
    from protocol.suites import PREFERENCE, choose_suite

    x_key, hybrid_key = A.x25519.public, A.hybrid.public
    assert PREFERENCE.index(HYBRID) < PREFERENCE.index(X)  # the hybrid suite is preferred when both have it
    assert choose_suite((X, HYBRID), [(HYBRID, hybrid_key), (X, x_key)]) == (HYBRID, hybrid_key)
    assert choose_suite((X,), [(HYBRID, hybrid_key), (X, x_key)]) == (X, x_key)  # we do not enable hybrid
    assert choose_suite((X, HYBRID), [(X, x_key)]) == (X, x_key)  # they offer no hybrid key
    with pytest.raises(LocalProtocolError) as caught:
        choose_suite((HYBRID,), [(X, x_key)])
    assert caught.value.code.value == "unsupported_suite"
