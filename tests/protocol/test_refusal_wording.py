"""A refusal names the part that failed. Its message travels to the peer in the receipt of
a rejected envelope, and to the operator who fetched a discovery document: "inner header:
rn_iat: ..." says where to look, where "InnerHeader: ..." names a Python class and a bare
"document must be a JSON object" names nothing. So each check is asserted with its whole
label, in its own case: a label changed, in capitals or left out, fails."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import pytest
from protocol_support import PEERS, A, B, craft, open_as_b

from node.codegen.vector_inputs import NOW, referral_offer
from protocol import jws
from protocol.discovery import verify_discovery
from protocol.encoding import b64u_encode, dumps_canonical, loads_object
from protocol.envelope import Routing, parse_envelope, sign_message
from protocol.errors import RemoteProtocolError
from protocol.messages import Disconnect
from protocol.models import validate
from protocol.receipts import make_receipt, verify_receipt
from protocol.wire import TYP_DISCOVERY, TYP_RECEIPT, Disposition, MessageType


def _refusal(action: Any) -> str:
    with pytest.raises(RemoteProtocolError) as caught:
        action()
    assert caught.value.code.value == "malformed"
    return caught.value.message


# --- discovery documents (spec 4.8, steps 2 to 4) ------------------------------------------


def _discovery_with(payload: Any) -> bytes:
    return jws.sign_flattened({"typ": TYP_DISCOVERY}, dumps_canonical(payload), A.identity)


def _discovery_payload() -> dict[str, Any]:
    return loads_object(jws.parse_flattened(A.discovery(), typ=TYP_DISCOVERY).payload)


def _verify_discovery(raw: bytes) -> None:
    verify_discovery(raw, expected_node_id=A.node_id)


# --- receipts (spec 9.4) ---------------------------------------------------------------------


def _receipt_with(payload: Any) -> bytes:
    return jws.sign_flattened({"typ": TYP_RECEIPT}, dumps_canonical(payload), A.signing)


def _receipt_payload() -> dict[str, Any]:
    raw = make_receipt(
        envelope_id="env-1", envelope_sha256="A" * 43, recipient=A.node_id, sender=B.node_id,
        disposition=Disposition.ACCEPTED, now=NOW, signing_key=A.signing,
    )  # fmt: skip
    return loads_object(jws.parse_flattened(raw, typ=TYP_RECEIPT).payload)


def _verify_receipt(raw: bytes) -> None:
    verify_receipt(raw, keys=PEERS["A"])


def test_the_receipt_payload_itself_verifies() -> None:
    """The cases below change one thing of this receipt, which verifies as it is."""
    assert verify_receipt(_receipt_with(_receipt_payload()), keys=PEERS["A"]).envelope_id == "env-1"


class Signed(NamedTuple):
    """A signed document whose refusals are worded by its label (spec 4.8 steps 2 to 4, 9.4)."""

    sign: Callable[[Any], bytes]  # a payload signed as such a document
    payload: Callable[[], dict[str, Any]]  # a payload that verifies
    check: Callable[[bytes], None]  # verify one
    member: str  # a member it must have
    other_type: str  # another document's type
    not_an_object: Any  # a payload that is no JSON object
    words: str  # the refusal of that payload


DOCUMENTS = {
    "discovery": Signed(_discovery_with, _discovery_payload, _verify_discovery, "name", "receipt/1.0",
                        [], "discovery document must be a JSON object"),
    "receipt": Signed(_receipt_with, _receipt_payload, _verify_receipt, "envelope_id", "discovery/1.0",
                      ["receipt/1.0"], "receipt must be a JSON object"),
}


@pytest.mark.parametrize("kind", DOCUMENTS)
def test_a_document_that_is_no_json_object_is_called_so(kind: str) -> None:
    d = DOCUMENTS[kind]
    assert _refusal(lambda: d.check(d.sign(d.not_an_object))) == d.words


@pytest.mark.parametrize("kind", DOCUMENTS)
def test_a_document_of_another_type_is_refused_for_its_type(kind: str) -> None:
    d = DOCUMENTS[kind]
    assert _refusal(lambda: d.check(d.sign(d.payload() | {"type": d.other_type}))) == (
        f"type must be {kind}, not {d.other_type.split('/')[0]}"
    )


@pytest.mark.parametrize("kind", DOCUMENTS)
def test_a_document_without_a_member_names_the_document_and_the_member(kind: str) -> None:
    d = DOCUMENTS[kind]
    broken = d.payload()
    del broken[d.member]
    assert _refusal(lambda: d.check(d.sign(broken))).startswith(f"{kind}: {d.member}: ")


# --- envelopes (spec 8.5): the inner header and the message --------------------------------


def test_an_inner_header_that_does_not_validate_is_called_the_inner_header() -> None:
    raw = craft(referral_offer().wire(), inner={"rn_iat": "yesterday"})
    assert _refusal(lambda: open_as_b(raw)).startswith("inner header: rn_iat: ")


def test_a_message_that_is_no_json_object_is_called_the_message() -> None:
    assert _refusal(lambda: open_as_b(craft(["referral-offer"]))) == "message must be a JSON object"


def test_a_message_that_does_not_validate_is_called_by_its_type() -> None:
    payload = referral_offer().wire()
    del payload["referral_id"]
    message = _refusal(lambda: open_as_b(craft(payload)))
    assert message.startswith("referral-offer: referral_id: "), message


def test_signing_a_message_under_another_type_names_both() -> None:
    routing = Routing(
        MessageType.REFERRAL_OFFER, "env-1", A.node_id, B.node_id, datetime(2026, 11, 23)
    )
    with pytest.raises(TypeError) as caught:
        sign_message(Disconnect(connection_id="conn-ab"), routing, A.signing)
    assert str(caught.value) == "Disconnect is not a referral-offer message"


def test_an_envelope_header_that_does_not_validate_is_called_the_envelope_header() -> None:
    raw = craft(referral_offer().wire(), outer={"rn_iat": "yesterday"})
    assert _refusal(lambda: parse_envelope(raw)).startswith("envelope header: rn_iat: ")


# --- the protected header of any JWS (spec 5.1) ----------------------------------------------


def _jws(protected: str) -> bytes:
    signed = loads_object(A.discovery())
    return dumps_canonical(signed | {"protected": protected})


@pytest.mark.parametrize(
    ("protected", "message"),
    [
        ("AAAAA", "protected header is not unpadded base64url"),
        (b64u_encode(b"[]"), "protected header must be a JSON object"),
    ],
    ids=["not base64url (5 characters)", "an array"],
)
def test_a_protected_header_that_cannot_be_read_is_called_so(protected: str, message: str) -> None:
    assert _refusal(lambda: jws.parse_flattened(_jws(protected), typ=TYP_DISCOVERY)) == message


# --- where in a document the check failed: the path of members, or (root) -----------------


def test_a_null_names_the_path_of_members_down_to_it() -> None:
    payload = _discovery_payload()
    payload["endpoints"] = {"inbox": None}
    message = _refusal(lambda: _verify_discovery(_discovery_with(payload)))
    assert message == "discovery: endpoints.inbox: null is not a value; omit the member instead"


def test_a_null_in_place_of_the_whole_document_is_at_the_root() -> None:
    message = _refusal(lambda: validate(Disconnect, None, what="disconnect"))
    assert message == "disconnect: (root): null is not a value; omit the member instead"


def test_a_refusal_names_the_path_of_members_down_to_what_failed() -> None:
    payload = _discovery_payload()
    payload["endpoints"] = {"inbox": "ftp://a.example/inbox"}
    message = _refusal(lambda: _verify_discovery(_discovery_with(payload)))
    assert message.startswith("discovery: endpoints.inbox: String should match pattern"), message


def test_a_rule_of_the_whole_receipt_is_at_its_root() -> None:
    payload = _receipt_payload() | {"disposition": "rejected"}  # a rejected receipt has an error
    message = _refusal(lambda: _verify_receipt(_receipt_with(payload)))
    assert message.startswith("receipt: (root): "), message


def test_a_jws_that_is_no_json_object_is_called_the_jws() -> None:
    message = _refusal(lambda: jws.parse_flattened(b'["protected"]', typ=TYP_DISCOVERY))
    assert message == "JWS must be a JSON object"


def test_a_receipt_that_is_no_json_is_called_the_receipt() -> None:
    raw = jws.sign_flattened({"typ": TYP_RECEIPT}, b'{"type":', A.signing)
    assert _refusal(lambda: _verify_receipt(raw)).startswith("receipt is not valid JSON: ")


def test_a_jws_with_critical_header_parameters_is_refused() -> None:
    raw = jws.sign_flattened({"typ": TYP_DISCOVERY, "crit": ["exp"], "exp": 1}, b"{}", A.identity)
    message = _refusal(lambda: jws.parse_flattened(raw, typ=TYP_DISCOVERY))
    assert message == "no crit header parameters are understood"


def test_a_payload_that_is_not_base64url_is_called_the_payload() -> None:
    raw = loads_object(A.discovery()) | {"payload": "AAAAA"}
    message = _refusal(lambda: jws.parse_flattened(dumps_canonical(raw), typ=TYP_DISCOVERY))
    assert message == "payload is not unpadded base64url"


@pytest.mark.parametrize("member", ["protected", "payload", "signature"])
def test_a_jws_member_that_is_no_string_is_refused_naming_it(member: str) -> None:
    raw = loads_object(A.discovery()) | {member: 1}
    message = _refusal(lambda: jws.parse_flattened(dumps_canonical(raw), typ=TYP_DISCOVERY))
    assert message == f"JWS: {member}: Input should be a valid string"


def test_a_jws_without_a_member_is_refused_naming_it() -> None:
    raw = {k: v for k, v in loads_object(A.discovery()).items() if k != "signature"}
    message = _refusal(lambda: jws.parse_flattened(dumps_canonical(raw), typ=TYP_DISCOVERY))
    assert message == "JWS: signature: Field required"
