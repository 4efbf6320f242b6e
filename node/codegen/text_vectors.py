"""Vectors of messages and texts, with no keys: the sharing and consent checks of a
referral offer (``offers.json``) and the strict encodings (``encoding.json``)."""

from __future__ import annotations

import copy
from typing import Any

from node.codegen.vector_inputs import referral_offer
from protocol.wire import MAX_JSON_DEPTH, MAX_JSON_INTEGER, ErrorCode

# --- referral offers: the sharing and consent checks --------------------------------------


def offers_file() -> dict[str, Any]:
    good = referral_offer().wire()

    def variant(**changes: Any) -> dict[str, Any]:
        return copy.deepcopy(good) | changes

    listed = good["shared_fields"]
    extra_contact = dict(good["contacts"][0], ref="contact-18", first_name="Sam")
    return {
        "description": (
            "The sharing and consent checks a receiver applies to a referral-offer (spec "
            "14.5), in order: every name in shared_fields is a shareable field (else "
            "malformed); every member present is covered by a listed name or is deal.title "
            "(else field_not_allowed); every contact's ref is in consent.contact_refs (else "
            "consent_required). Each message here is valid against referral-offer.schema.json, "
            "except the one with a null member, which the schema and the model refuse. "
            "'accept' passes all three; the first is the message of every envelope vector."
        ),
        "accept": [
            {"name": "the envelope vectors' offer", "message": good},
            {
                "name": "deal.title need not be listed; a listed name may be absent",
                "message": variant(
                    shared_fields=[n for n in listed if n != "deal.title"] + ["contacts.address"]
                ),
            },
        ],
        "must_reject": [
            {
                "name": "an unknown name in shared_fields",
                "message": variant(shared_fields=[*listed, "contacts.notes"]),
                "error": ErrorCode.MALFORMED.value,
            },
            {
                "name": "deal.amount and deal.currency carried, deal.amount not listed",
                "message": variant(shared_fields=[n for n in listed if n != "deal.amount"]),
                "error": ErrorCode.FIELD_NOT_ALLOWED.value,
            },
            {
                "name": "a contact's phone carried, contacts.phone not listed",
                "message": variant(shared_fields=[n for n in listed if n != "contacts.phone"]),
                "error": ErrorCode.FIELD_NOT_ALLOWED.value,
            },
            {
                "name": "owner is null (no member is ever null; omit it)",
                "message": variant(owner=None),
                "error": ErrorCode.MALFORMED.value,
            },
            {
                "name": "a second contact who did not consent",
                "message": variant(contacts=[*good["contacts"], extra_contact]),
                "error": ErrorCode.CONSENT_REQUIRED.value,
            },
        ],
    }


# --- strict encodings ------------------------------------------------------------------


def _nested(depth: int) -> str:
    """``depth`` arrays nested in each other around the integer 1: ``[[1]]`` is depth 2."""
    return "[" * depth + "1" + "]" * depth


def _nested_value(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def encoding_file() -> dict[str, Any]:
    def text(source: str, error: ErrorCode | None = None, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"hex": source.encode("utf-8").hex(), "text": source, **extra}
        if error is not None:
            out["error"] = error.value
        return out

    malformed = ErrorCode.MALFORMED
    return {
        "description": (
            "Strict encodings. base64url: no padding, URL alphabet only, canonical (unused "
            "low bits zero). JSON: UTF-8, no duplicate member names, no floats, no NaN or "
            "Infinity, no lone surrogates, integers within +-(2^53 - 1), objects and arrays "
            "nested at most 32 deep (the outermost is level 1). Inputs are given as hex of "
            "the exact bytes. These are the rules of the strict JSON reader alone (spec 3.2's "
            "list): 'accept' means the text parses, not that a message, document or header "
            "holding it is valid. In particular the reader accepts null, and the rule 'No "
            "null' of 3.2 refuses it one level up: a message, document or protected header "
            "with null anywhere is malformed, so null never travels (the cases marked "
            "'in_a_message': 'malformed'). Likewise the schemas, not the reader, refuse "
            "members or nesting a message does not have."
        ),
        "base64url": {
            "accept": [
                text("", decoded_hex=""),
                text("AA", decoded_hex="00"),
                text("_-8", decoded_hex="ffef"),
                text("_-_v", decoded_hex="ffefef"),
                text("Zm9vYg", decoded_hex="666f6f62"),
            ],
            "reject": [
                text("AA==", malformed),
                text("+/8", malformed),
                text("AB", malformed),
                text("A", malformed),
                text("Zm9v Yg", malformed),
                text("Zm9vYg\n", malformed),
                text("é", malformed),
            ],
        },
        "json": {
            "accept": [
                text('{"amount":"425000.00","n":1}', value={"amount": "425000.00", "n": 1}),
                text('{"a":"\\ud83d\\ude00"}', value={"a": "\U0001f600"}),
                text(
                    ' {"a" : [true,false,null]} ',
                    value={"a": [True, False, None]},
                    in_a_message=malformed.value,
                ),
                text('{"n":9007199254740991}', value={"n": MAX_JSON_INTEGER}),
                text('{"n":-9007199254740991}', value={"n": -MAX_JSON_INTEGER}),
                text('{"n":-0}', value={"n": 0}),
                text(_nested(MAX_JSON_DEPTH), value=_nested_value(MAX_JSON_DEPTH)),
            ],
            "reject": [
                text('{"a":1,"a":2}', malformed),
                text('{"amount":425000.5}', malformed),
                text('{"n":1e3}', malformed),
                text('{"n":NaN}', malformed),
                text('{"n":Infinity}', malformed),
                text('{"a":"\\ud800"}', malformed),
                text('{"a":1', malformed),
                text('{"n":9007199254740992}', malformed),
                text('{"n":-9007199254740992}', malformed),
                text('{"n":100000000000000000000000000000}', malformed),
                text(_nested(MAX_JSON_DEPTH + 1), malformed),
                text('{"a":' + _nested(MAX_JSON_DEPTH) + "}", malformed),
                {"hex": "7b2261223a22ff227d", "text": None, "error": malformed.value},
            ],
        },
    }
