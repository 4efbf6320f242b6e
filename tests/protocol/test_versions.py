"""Versioning: an unknown major is refused with the supported list; a newer minor is
accepted and its unknown members ignored; unknown members in our own minor are malformed."""

from __future__ import annotations

from typing import Any

import pytest
from protocol_support import PEERS, A, B, craft, open_as_b

from node.codegen.vector_inputs import referral_offer
from protocol import jws
from protocol.discovery import verify_discovery
from protocol.encoding import dumps_canonical, loads_object
from protocol.envelope import parse_envelope
from protocol.errors import RemoteProtocolError
from protocol.messages import ReferralOffer
from protocol.receipts import verify_receipt
from protocol.versions import is_newer_minor, parse_versioned
from protocol.wire import TYP_DISCOVERY, TYP_RECEIPT, ErrorCode

OFFER = referral_offer().wire()


def _code(action: Any) -> ErrorCode:
    with pytest.raises(RemoteProtocolError) as caught:
        action()
    return caught.value.code


# --- envelopes and messages ------------------------------------------------------------


def test_unknown_protocol_major_is_refused_with_the_supported_list() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_envelope(craft(OFFER, outer={"rn_v": 2}))
    assert caught.value.code is ErrorCode.UNSUPPORTED_VERSION
    assert caught.value.detail["supported"] == [1]


def test_unknown_message_major_is_refused_with_the_supported_list() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_envelope(craft(OFFER, rn_type="referral-offer/2.0"))
    assert caught.value.code is ErrorCode.UNSUPPORTED_VERSION
    assert caught.value.detail["supported"] == [1]


def test_unknown_message_type_is_unsupported_type() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_envelope(craft(OFFER, rn_type="referral-teleport/1.0"))
    assert caught.value.code is ErrorCode.UNSUPPORTED_TYPE
    assert "referral-offer" in caught.value.detail["supported"]


def test_newer_minor_with_unknown_members_is_accepted_and_they_are_ignored() -> None:
    payload = dict(OFFER, priority="high", deal=dict(OFFER["deal"], colour="blue"))
    opened = open_as_b(craft(payload, rn_type="referral-offer/1.7"))
    assert opened.parsed.minor == 7
    assert isinstance(opened.message, ReferralOffer)
    assert opened.message == referral_offer()  # both unknown members dropped, the rest kept
    assert "priority" not in opened.message.wire() and "colour" not in opened.message.wire()["deal"]


def test_same_minor_with_an_unknown_member_is_malformed() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        open_as_b(craft(dict(OFFER, priority="high")))
    assert caught.value.code is ErrorCode.MALFORMED
    assert "priority" in caught.value.message


def test_same_minor_with_an_unknown_nested_member_is_malformed() -> None:
    payload = dict(OFFER, deal=dict(OFFER["deal"], colour="blue"))
    assert _code(lambda: open_as_b(craft(payload))) is ErrorCode.MALFORMED


def test_newer_minor_still_needs_every_member_we_know() -> None:
    payload = {k: v for k, v in OFFER.items() if k != "consent"}
    assert (
        _code(lambda: open_as_b(craft(payload, rn_type="referral-offer/1.1")))
        is ErrorCode.MALFORMED
    )


def test_newer_minor_does_not_relax_the_headers() -> None:
    raw = craft(OFFER, rn_type="referral-offer/1.1", outer={"rn_priority": 1})
    assert _code(lambda: parse_envelope(raw)) is ErrorCode.MALFORMED


# --- signed documents ------------------------------------------------------------------


def _discovery_with(**changes: Any) -> bytes:
    payload = jws.parse_flattened(A.discovery(), typ=TYP_DISCOVERY).payload
    doc = loads_object(payload) | changes
    return jws.sign_flattened({"typ": TYP_DISCOVERY}, dumps_canonical(doc), A.identity)


def test_discovery_versions() -> None:
    doc, keys = verify_discovery(_discovery_with(type="discovery/1.3", relay="https://x.example"))
    assert doc.node_id == A.node_id and keys.signing
    assert (
        _code(lambda: verify_discovery(_discovery_with(relay="https://x.example")))
        is ErrorCode.MALFORMED
    )
    with pytest.raises(RemoteProtocolError) as caught:
        verify_discovery(_discovery_with(type="discovery/2.0"))
    assert caught.value.code is ErrorCode.UNSUPPORTED_VERSION
    assert caught.value.detail["supported"] == [1]


def _receipt(**changes: Any) -> bytes:
    payload = {
        "type": "receipt/1.0",
        "envelope_id": "env-1",
        "envelope_sha256": "A" * 43,
        "from": B.node_id,
        "to": A.node_id,
        "disposition": "accepted",
        "received_at": "2026-11-23T12:00:00Z",
    } | changes
    return jws.sign_flattened({"typ": TYP_RECEIPT}, dumps_canonical(payload), B.signing)


def test_receipt_versions() -> None:
    assert verify_receipt(_receipt(), keys=PEERS["B"]).envelope_id == "env-1"
    newer = verify_receipt(_receipt(type="receipt/1.2", note="x"), keys=PEERS["B"])
    assert newer.from_ == B.node_id
    assert _code(lambda: verify_receipt(_receipt(note="x"), keys=PEERS["B"])) is ErrorCode.MALFORMED
    assert _code(lambda: verify_receipt(_receipt(type="receipt/3.0"), keys=PEERS["B"])) is (
        ErrorCode.UNSUPPORTED_VERSION
    )


def test_only_wire_names_are_accepted() -> None:
    # "from" is the wire name; the Python attribute name "from_" is no member of a receipt.
    good = {"type": "receipt/1.0", "envelope_id": "env-1", "envelope_sha256": "A" * 43,
            "from": B.node_id, "to": A.node_id, "disposition": "accepted",
            "received_at": "2026-11-23T12:00:00Z"}  # fmt: skip
    bad = {("from_" if k == "from" else k): v for k, v in good.items()}

    def signed(payload: dict[str, Any]) -> bytes:
        return jws.sign_flattened({"typ": TYP_RECEIPT}, dumps_canonical(payload), B.signing)

    assert verify_receipt(signed(good), keys=PEERS["B"]).from_ == B.node_id
    assert _code(lambda: verify_receipt(signed(bad), keys=PEERS["B"])) is ErrorCode.MALFORMED


# --- the version string itself ---------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["referral-offer", "referral-offer/1", "Referral-offer/1.0", "referral-offer/1.0\n", 1, None],
)
def test_version_strings_that_are_not_name_major_minor_are_malformed(text: object) -> None:
    assert _code(lambda: parse_versioned(text)) is ErrorCode.MALFORMED


def test_minor_comparison() -> None:
    assert parse_versioned("receipt/1.4", expected="receipt") == ("receipt", 4)
    assert is_newer_minor("receipt", 4) and not is_newer_minor("receipt", 0)
    assert (
        _code(lambda: parse_versioned("receipt/1.0", expected="discovery")) is ErrorCode.MALFORMED
    )
