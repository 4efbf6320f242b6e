"""No value on the wire is null (spec 3.2): a null member is malformed wherever it stands,
and no schema admits one. Before, an optional member's null was read as "absent" by our
node and refused by a strict reading of the spec (issue 15, gap 4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from protocol_support import load_vector

from protocol.envelope import EnvelopeHeader, InnerHeader
from protocol.errors import RemoteProtocolError
from protocol.messages import Discovery, Receipt, ReferralOffer
from protocol.models import WireModel, validate

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
SIGNING = load_vector("envelope-signing.json")
OFFER = SIGNING["message"]
RECEIPT = load_vector("receipts.json")["receipts"]["accepted"]["payload"]
DISCOVERY = load_vector("discovery.json")["documents"][0]["document"]


def _refused(model: type[WireModel], data: Any, *, lenient: bool = False) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as caught:
        validate(model, data, lenient=lenient)
    assert caught.value.code.value == "malformed"
    assert "null" in caught.value.message
    return caught.value


def test_the_valid_objects_are_valid() -> None:
    for model, data in (
        (EnvelopeHeader, SIGNING["outer"]["protected_header"]),
        (InnerHeader, SIGNING["inner"]["protected_header"]),
        (ReferralOffer, OFFER),
        (Receipt, RECEIPT),
        (Discovery, DISCOVERY),
    ):
        validate(model, data)


@pytest.mark.parametrize(
    ("model", "data", "loc"),
    [
        (EnvelopeHeader, SIGNING["outer"]["protected_header"] | {"rn_reply_to": None}, ["rn_reply_to"]),
        (InnerHeader, SIGNING["inner"]["protected_header"] | {"rn_reply_to": None}, ["rn_reply_to"]),
        (ReferralOffer, OFFER | {"owner": None}, ["owner"]),
        (ReferralOffer, OFFER | {"message": None}, ["message"]),  # a required member
        (ReferralOffer, OFFER | {"deal": OFFER["deal"] | {"summary": None}}, ["deal", "summary"]),
        (ReferralOffer, OFFER | {"shared_fields": [*OFFER["shared_fields"], None]}, ["shared_fields", "8"]),
        (Receipt, RECEIPT | {"error": None}, ["error"]),
        (Discovery, DISCOVERY | {"keys": [DISCOVERY["keys"][0] | {"suite": None}, *DISCOVERY["keys"][1:]]}, ["keys", "0", "suite"]),
        (EnvelopeHeader, {"rn_reply_to": None, "rn_id": None}, ["rn_reply_to"]),  # nothing but nulls
    ],
    ids=["outer rn_reply_to", "inner rn_reply_to", "offer owner", "offer message (required)",
         "nested deal.summary", "array element", "receipt error", "discovery key suite", "only nulls"],
)  # fmt: skip
def test_a_null_member_is_malformed(model: type[WireModel], data: Any, loc: list[str]) -> None:
    assert _refused(model, data).detail["errors"][0]["loc"] == loc


def test_a_null_unknown_member_is_refused_even_from_a_newer_minor() -> None:
    validate(ReferralOffer, OFFER | {"future_member": "x"}, lenient=True)  # ignored
    _refused(ReferralOffer, OFFER | {"future_member": None}, lenient=True)


def test_no_schema_admits_null() -> None:
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        text = path.read_text(encoding="utf-8")
        assert '"null"' not in text and "null" not in json.dumps(json.loads(text)), path.name


def test_the_schema_refuses_a_null_optional_member() -> None:
    schema = json.loads((SCHEMAS / "envelope-header.schema.json").read_text(encoding="utf-8"))
    header = SIGNING["outer"]["protected_header"]
    jsonschema.validate(header, schema)
    jsonschema.validate(header | {"rn_reply_to": "env-0000"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(header | {"rn_reply_to": None}, schema)
    offer_schema = json.loads((SCHEMAS / "referral-offer.schema.json").read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(OFFER | {"owner": None}, offer_schema)


def test_the_must_reject_vectors_carry_the_rule() -> None:
    names = [c["name"] for c in load_vector("envelopes-reject.json")["must_reject"]]
    assert any("rn_reply_to is null" in n for n in names)
    offers = load_vector("offers.json")["must_reject"]
    assert [c["error"] for c in offers if "null" in c["name"]] == ["malformed"]
