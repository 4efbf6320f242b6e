"""The cheap paths of the receive path say what the slow ones said: the same bytes, the
same refusals in the same words. Each is checked against what it stands in for: the
Receipt model, the FlattenedJws model, strftime, dumps_canonical."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_support import A, B
from pydantic import ValidationError

from node.codegen.vector_inputs import NOW
from protocol import jws
from protocol.encoding import b64u_encode, dumps_canonical, loads_strict
from protocol.errors import RemoteProtocolError
from protocol.messages import Receipt
from protocol.models import format_ts
from protocol.receipts import make_receipt
from protocol.wire import TYP_ENVELOPE, TYP_RECEIPT, Disposition, DocumentType, versioned

SOME = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Valid values and near misses: the wrong length, a final "\n" (which a "$" lets through
# in Python's re, not in pydantic's), characters outside base64url, not a str at all.
ids = st.one_of(
    st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    st.sampled_from(["", "a" * 65, "env\n", "env 1", "é", "env/1"]),
    st.text(max_size=70),
)
b64_43 = st.one_of(
    st.from_regex(r"[A-Za-z0-9_-]{43}", fullmatch=True),
    st.sampled_from(["A" * 42, "A" * 44, "A" * 43 + "\n", "+" * 43, "=" * 43]),
)
moments = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(
        min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30),
        timezones=st.builds(timezone, st.integers(-1439, 1439).map(lambda m: timedelta(minutes=m))),
    ),
)  # fmt: skip


def _model_receipt(**fields: Any) -> bytes | str:
    """The receipt as make_receipt built it before it had a fast path (or the refusal)."""
    try:
        receipt = Receipt(
            type=versioned(DocumentType.RECEIPT),
            envelope_id=fields["envelope_id"],
            envelope_sha256=fields["envelope_sha256"],
            from_=fields["recipient"],
            to=fields["sender"],
            disposition=fields["disposition"],
            error=None,
            received_at=format_ts(fields["now"]),
        )
    except ValidationError as exc:
        return str(exc)
    return jws.sign_flattened({"typ": TYP_RECEIPT}, dumps_canonical(receipt.wire()), B.signing)


@SOME
@given(
    envelope_id=ids,
    envelope_sha256=b64_43,
    recipient=st.one_of(st.just(B.node_id), b64_43),
    sender=st.one_of(st.just(A.node_id), b64_43),
    disposition=st.sampled_from([Disposition.ACCEPTED, Disposition.DUPLICATE, "accepted"]),
    now=moments,
)
def test_receipts_without_an_error_are_the_receipt_models_bytes(**fields: Any) -> None:
    expected = _model_receipt(**fields)
    try:
        got: bytes | str = make_receipt(**fields, signing_key=B.signing)
    except ValidationError as exc:
        got = str(exc)
    assert got == expected


def test_a_year_before_1000_is_refused_as_before() -> None:
    with pytest.raises(ValidationError, match="received_at"):
        make_receipt(
            envelope_id="env-1", envelope_sha256="A" * 43, recipient=B.node_id,
            sender=A.node_id, disposition=Disposition.ACCEPTED,
            now=datetime(999, 12, 31, tzinfo=UTC), signing_key=B.signing,
        )  # fmt: skip


@given(moment=moments)
def test_format_ts_writes_what_strftime_writes(moment: datetime) -> None:
    assert format_ts(moment) == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@given(
    header=st.dictionaries(
        st.text(max_size=8).filter(lambda k: k not in {"alg", "kid", "crit"}),
        st.text(max_size=8),
        max_size=3,
    ),
    typ=st.sampled_from([TYP_RECEIPT, TYP_ENVELOPE, "é\"\\"]),
    payload=st.binary(max_size=200),
)
def test_sign_flattened_writes_canonical_json(header: dict[str, str], typ: str, payload: bytes) -> None:
    for full in ({"typ": typ}, {**header, "typ": typ}):
        raw = jws.sign_flattened(full, payload, A.signing)
        assert dumps_canonical(json.loads(raw)) == raw
        parsed = jws.parse_flattened(raw, typ=typ)
        assert parsed.header == {**full, "alg": jws.ALG, "kid": A.signing.kid}
        assert parsed.payload == payload
        parsed.verify(A.signing.public)


GOOD = {
    "protected": b64u_encode(b'{"alg":"Ed25519","kid":"k","typ":"x"}'),
    "payload": "",
    "signature": "A" * 86,
}


@pytest.mark.parametrize("member", sorted(GOOD))
@pytest.mark.parametrize("value", ["AAA=", "A+A", "A/A", "A A", "AA\n", "é", "A.A"])
def test_a_member_outside_base64url_is_refused_in_the_models_words(member: str, value: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        jws.parse_flattened(json.dumps(GOOD | {member: value}).encode(), typ="x")
    assert caught.value.message == f"JWS: {member}: String should match pattern '^[A-Za-z0-9_-]*$'"


def test_base64url_that_does_not_decode_is_refused_by_the_decoder() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        jws.parse_flattened(json.dumps(GOOD | {"signature": "AAAAA"}).encode(), typ="x")
    assert caught.value.message == "signature is not unpadded base64url"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a":"\\n\\ud800"}', "document has a lone surrogate"),
        ('["\\\\", "\\udc00"]', "document has a lone surrogate"),
        (
            "\ufeff{}",
            "document is not valid JSON: Unexpected UTF-8 BOM (decode using utf-8-sig): "
            "line 1 column 1 (char 0)",
        ),
        ('{"a":1,"a":1}', "duplicate member 'a'"),
        ("[1.0]", "floats are not allowed; send decimals as strings"),
        ("[NaN]", "NaN is not JSON"),
    ],
)
def test_strict_json_refusals(text: str, message: str) -> None:
    for data in (text, text.encode("utf-8")):
        with pytest.raises(RemoteProtocolError) as caught:
            loads_strict(data)
        assert caught.value.message == message


def test_escaped_backslashes_and_pairs_are_text() -> None:
    assert loads_strict('["\\\\ud800", "\\ud83d\\ude00", "\\u00e9"]') == ["\\ud800", "😀", "é"]


def test_a_receipt_signed_with_another_key_names_that_key() -> None:
    raws = [
        make_receipt(
            envelope_id="env-1", envelope_sha256="A" * 43, recipient=B.node_id,
            sender=A.node_id, disposition=Disposition.ACCEPTED, now=NOW, signing_key=key,
        )
        for key in (B.signing, A.signing, B.signing)
    ]  # fmt: skip
    kids = [jws.parse_flattened(raw, typ=TYP_RECEIPT).kid for raw in raws]
    assert kids == [B.signing.kid, A.signing.kid, B.signing.kid]


def test_format_ts_writes_utc_whatever_the_local_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A moment in another zone, on a machine whose own zone is not UTC, is still written in
    UTC (``astimezone()`` without a zone would give local time)."""
    monkeypatch.setenv("TZ", "Australia/Sydney")
    time.tzset()
    try:
        sydney = timezone(timedelta(hours=11))
        assert format_ts(datetime(2026, 12, 4, 9, 30, 5, tzinfo=sydney)) == "2026-12-03T22:30:05Z"
        assert format_ts(datetime(2026, 12, 3, 22, 30, 5, tzinfo=UTC)) == "2026-12-03T22:30:05Z"
    finally:
        monkeypatch.undo()
        time.tzset()
