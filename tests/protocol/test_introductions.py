"""An introduction (docs/protocol.md 8.5, 12.1): a connection-request from a node the
receiver has no keys for, which carries the sender's signed discovery document. It opens
as an introduction, with the keys learnt from that document; a newer minor's unknown
members are dropped, as for any message; a payload that is no object is refused naming
the message."""

from __future__ import annotations

from typing import Any

import pytest
from protocol_support import A, craft, open_as_b

from protocol.errors import RemoteProtocolError
from protocol.messages import ConnectionRequest


def _request(**changes: Any) -> dict[str, Any]:
    return {
        "connection_id": "c1",
        "requester_discovery": A.discovery().decode(),
        "target_email": "x@b.example",
        "requested_by": {"name": "Ann", "email": "ann@a.example"},
        "direction": "both",
    } | changes


def test_a_connection_request_from_an_unknown_node_opens_as_an_introduction() -> None:
    opened = open_as_b(craft(_request(), rn_type="connection-request/1.0"), known=False)
    assert opened.introduction is True
    assert opened.sender_keys.node_id == A.node_id and set(opened.sender_keys.signing) == {
        A.signing.kid
    }
    assert isinstance(opened.message, ConnectionRequest) and opened.message.connection_id == "c1"


def test_a_newer_minor_introduction_drops_the_members_it_does_not_know() -> None:
    raw = craft(_request(referral_budget="10"), rn_type="connection-request/1.9")
    opened = open_as_b(raw, known=False)
    assert opened.introduction is True
    assert opened.message == ConnectionRequest.model_validate(_request(), by_alias=True)
    with pytest.raises(RemoteProtocolError) as caught:  # in our own minor it is malformed
        open_as_b(
            craft(_request(referral_budget="10"), rn_type="connection-request/1.0"), known=False
        )
    assert caught.value.code.value == "malformed"


def test_an_introduction_that_is_no_json_object_is_called_the_message() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        open_as_b(craft([_request()], rn_type="connection-request/1.0"), known=False)
    assert caught.value.code.value == "malformed"
    assert caught.value.message == "message must be a JSON object"
