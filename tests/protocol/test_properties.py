"""Properties (hypothesis): round trips, "any tampering is rejected", and "whatever a
peer sends, the only exceptions are ProtocolErrors"."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_support import NODES, PEERS, A, B, craft, open_as_b

from node.codegen.vector_inputs import NOW, referral_offer
from protocol import jws
from protocol.discovery import verify_discovery
from protocol.encoding import b64u_decode, b64u_encode, dumps_canonical, loads_object, loads_strict
from protocol.envelope import digest, parse_envelope, seal_envelope
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.invitations import InvitationState, check_redemption, parse_referral, secret_hash
from protocol.messages import (
    Address,
    ConnectionAccept,
    ConnectionConfirm,
    ConnectionRefuse,
    ContactProfile,
    DealSummary,
    Disconnect,
    Person,
    ReferralStatus,
)
from protocol.models import WireModel, format_ts
from protocol.receipts import make_receipt, verify_receipt
from protocol.suites import SuiteId, hpke_info, open_sealed, seal
from protocol.wire import (
    MAX_CLOCK_SKEW_S,
    MAX_ENVELOPE_AGE_S,
    TYP_DISCOVERY,
    TYP_RECEIPT,
    Disposition,
    ErrorCode,
    MessageType,
)

SOME = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies ------------------------------------------------------------------------

idents = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
short_text = st.text(max_size=200)
long_text = st.text(max_size=400)
emails = st.from_regex(r"[a-z0-9.+]{1,20}@[a-z0-9-]{1,20}\.[a-z]{2,6}", fullmatch=True)
timestamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda d: format_ts(d.replace(tzinfo=UTC))
)
people = st.builds(Person, name=short_text, email=emails)
amounts = st.from_regex(r"-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,4})?", fullmatch=True)

contacts = st.builds(
    ContactProfile,
    ref=idents,
    role=st.sampled_from(["primary", "co-applicant", "other"]),
    first_name=st.none() | short_text,
    last_name=st.none() | short_text,
    email=st.none() | emails,
    address=st.none()
    | st.builds(Address, line1=st.none() | short_text, postcode=st.none() | st.text(max_size=20)),
)


@st.composite
def offers(draw: st.DrawFn) -> WireModel:
    base = referral_offer()
    money = draw(st.none() | st.tuples(amounts, st.sampled_from(["GBP", "EUR", "AUD"])))
    return base.model_copy(
        update={
            "referral_id": draw(idents),
            "deal": DealSummary(
                title=draw(short_text.filter(bool)),
                amount=money[0] if money else None,
                currency=money[1] if money else None,
                summary=draw(st.none() | long_text),
            ),
            "contacts": draw(st.lists(contacts, min_size=1, max_size=3)),
            "message": draw(long_text),
            "owner": draw(st.none() | people),
        }
    )


messages: st.SearchStrategy[tuple[MessageType, WireModel]] = st.one_of(
    st.tuples(st.just(MessageType.REFERRAL_OFFER), offers()),
    st.tuples(
        st.just(MessageType.CONNECTION_CONFIRM), st.builds(ConnectionConfirm, connection_id=idents)
    ),
    st.tuples(
        st.just(MessageType.DISCONNECT),
        st.builds(Disconnect, connection_id=idents, reason=long_text),
    ),
    st.tuples(
        st.just(MessageType.CONNECTION_REFUSE),
        st.builds(
            ConnectionRefuse,
            connection_id=idents,
            reason=st.sampled_from([*ErrorCode, "declined"]),
            message=long_text,
        ),
    ),
    st.tuples(
        st.just(MessageType.CONNECTION_ACCEPT),
        st.builds(
            ConnectionAccept,
            connection_id=idents,
            direction=st.sampled_from(["send", "receive", "both"]),
            accepted_by=people,
            name=short_text,
        ),
    ),
    st.tuples(
        st.just(MessageType.REFERRAL_STATUS),
        st.builds(
            ReferralStatus,
            referral_id=idents,
            seq=st.integers(1, 2**53 - 1),
            status=st.sampled_from(["received", "accepted", "in-progress", "won", "lost"]),
            stage=st.none() | short_text,
            reason=st.none() | long_text,
            at=timestamps,
        ),
    ),
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=16,
)


def only_protocol_errors(action: Callable[[], object]) -> ProtocolError | None:
    """Run ``action``; a ProtocolError is returned, any other exception fails the test."""
    try:
        action()
    except ProtocolError as exc:
        return exc
    return None


def _seal(message: WireModel, message_type: MessageType, suite: SuiteId, **extra: Any) -> bytes:
    return seal_envelope(
        message, message_type=message_type, envelope_id=extra.pop("envelope_id", "env-p"),
        sender=A.node_id, recipient=B.node_id, now=extra.pop("now", NOW), signing_key=A.signing,
        suite=suite, recipient_key=B.enc_key(suite).public, **extra,
    )  # fmt: skip


# --- round trips -----------------------------------------------------------------------


@SOME
@given(
    message=messages,
    suite=st.sampled_from(SuiteId),
    envelope_id=idents,
    reply_to=st.none() | idents,
)
def test_envelope_round_trip(
    message: tuple[MessageType, WireModel], suite: SuiteId, envelope_id: str, reply_to: str | None
) -> None:
    message_type, model = message
    raw = _seal(model, message_type, suite, envelope_id=envelope_id, reply_to=reply_to)
    opened = open_as_b(raw)
    assert opened.message == model and type(opened.message) is type(model)
    assert opened.parsed.message_type is message_type
    assert (opened.parsed.envelope_id, opened.parsed.sender) == (envelope_id, A.node_id)
    assert opened.parsed.header.rn_reply_to == reply_to
    assert opened.parsed.header.rn_suite == suite.value
    assert opened.parsed.sha256 == digest(raw)
    assert not opened.introduction


ENVELOPE = _seal(referral_offer(), MessageType.REFERRAL_OFFER, SuiteId.X25519_CHACHA)


@SOME
@given(offset_s=st.integers(-3 * MAX_CLOCK_SKEW_S, MAX_ENVELOPE_AGE_S + 3 * MAX_CLOCK_SKEW_S))
def test_time_window(offset_s: int) -> None:
    """Created at NOW, received at NOW + offset: accepted exactly inside the window."""
    error = only_protocol_errors(lambda: open_as_b(ENVELOPE, now=NOW + timedelta(seconds=offset_s)))
    if offset_s < -MAX_CLOCK_SKEW_S:
        assert error is not None and error.code is ErrorCode.NOT_YET_VALID
    elif offset_s > MAX_ENVELOPE_AGE_S:
        assert error is not None and error.code is ErrorCode.EXPIRED
    else:
        assert error is None


@SOME
@given(
    plaintext=st.binary(max_size=2048),
    info=st.binary(max_size=64),
    suite=st.sampled_from(SuiteId),
    flip=st.integers(0, 10**6),
)
def test_seal_open_round_trip(plaintext: bytes, info: bytes, suite: SuiteId, flip: int) -> None:
    key = B.enc_key(suite)
    sealed = seal(suite, key.public, plaintext, info)
    assert open_sealed(suite, key, sealed, info) == plaintext
    tampered = bytearray(sealed)
    tampered[flip % len(sealed)] ^= 1 << (flip % 8)
    for bad in (
        lambda: open_sealed(suite, key, bytes(tampered), info),
        lambda: open_sealed(suite, key, sealed, info + b"x"),
        lambda: open_sealed(suite, NODES["C"].enc_key(suite), sealed, info),
    ):
        with pytest.raises(RemoteProtocolError) as caught:
            bad()
        assert caught.value.code is ErrorCode.DECRYPT_FAILED


def test_hpke_info_binds_sender_recipient_and_id() -> None:
    # Re-addressing the same sealed payload to another envelope id must not decrypt.
    key = B.x25519
    sealed = seal(SuiteId.X25519_CHACHA, key.public, b"m", hpke_info(A.node_id, B.node_id, "e1"))
    assert (
        open_sealed(SuiteId.X25519_CHACHA, key, sealed, hpke_info(A.node_id, B.node_id, "e1"))
        == b"m"
    )
    for info in (
        hpke_info(A.node_id, B.node_id, "e2"),
        hpke_info(NODES["C"].node_id, B.node_id, "e1"),
    ):
        with pytest.raises(RemoteProtocolError):
            open_sealed(SuiteId.X25519_CHACHA, key, sealed, info)


digests = st.binary(min_size=32, max_size=32).map(b64u_encode)


@SOME
@given(
    envelope_id=idents,
    sha=digests,
    disposition=st.sampled_from(Disposition),
    code=st.sampled_from(ErrorCode),
    message=long_text,
    moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)),
)
def test_receipt_round_trip(
    envelope_id: str,
    sha: str,
    disposition: Disposition,
    code: ErrorCode,
    message: str,
    moment: datetime,
) -> None:
    error = RemoteProtocolError(code, message) if disposition is Disposition.REJECTED else None
    raw = make_receipt(
        envelope_id=envelope_id, envelope_sha256=sha, recipient=B.node_id, sender=A.node_id,
        disposition=disposition, now=moment.replace(tzinfo=UTC), signing_key=B.signing, error=error,
    )  # fmt: skip
    receipt = verify_receipt(
        raw, keys=PEERS["B"], envelope_id=envelope_id, envelope_sha256=sha, sender=A.node_id
    )
    assert (receipt.envelope_id, receipt.envelope_sha256, receipt.disposition) == (
        envelope_id,
        sha,
        disposition,
    )
    assert receipt.from_ == B.node_id and receipt.to == A.node_id
    assert receipt.received_at == format_ts(moment.replace(tzinfo=UTC))
    if error is None:
        assert receipt.error is None
    else:
        assert receipt.error is not None and (receipt.error.code, receipt.error.message) == (
            code,
            message,
        )


# --- any tampering is rejected ---------------------------------------------------------

_SIGNED_ONLY = {"typ", "alg"}  # a changed value here is malformed, never anything else
_HEADER_CODES = {
    "kid": {ErrorCode.UNKNOWN_KEY},
    "rn_from": {ErrorCode.UNKNOWN_SENDER},
    "rn_v": {ErrorCode.UNSUPPORTED_VERSION},
    "rn_type": {ErrorCode.UNSUPPORTED_TYPE, ErrorCode.UNSUPPORTED_VERSION, ErrorCode.BAD_SIGNATURE},
}
_MISSING = object()


def _value_spans(raw: bytes) -> dict[str, tuple[int, int]]:
    """Where each member's string value lies in the (canonical) flattened JWS bytes."""
    spans = {}
    for member in ("payload", "protected", "signature"):
        start = raw.index(f'"{member}":"'.encode()) + len(member) + 4
        spans[member] = (start, raw.index(b'"', start))
    return spans


def expected_codes(raw: bytes, position: int, new: int) -> set[ErrorCode]:
    """The codes a receiver may answer when byte ``position`` of ``raw`` becomes ``new``."""
    malformed = {ErrorCode.MALFORMED}
    member = next((m for m, (s, e) in _value_spans(raw).items() if s <= position < e), None)
    if member is None or not 0x20 <= new < 0x80 or new in b'"\\':
        return malformed  # JSON structure, control characters, quotes, escapes, non-UTF-8
    start, end = _value_spans(raw)[member]
    text = bytearray(raw[start:end])
    text[position - start] = new
    try:
        decoded = b64u_decode(text.decode("ascii"))
    except RemoteProtocolError:
        return malformed  # not (canonical) base64url any more
    if member != "protected":
        return {ErrorCode.BAD_SIGNATURE}
    try:
        header = loads_object(decoded)
    except RemoteProtocolError:
        return malformed
    original = loads_object(b64u_decode(raw[start:end].decode("ascii")))
    if set(header) != set(original):
        return malformed
    changed = [k for k in header if header[k] != original.get(k, _MISSING)]
    assert len(changed) == 1, changed  # one base64 character covers at most two bytes
    if changed[0] in _SIGNED_ONLY:
        return malformed
    return malformed | _HEADER_CODES.get(changed[0], {ErrorCode.BAD_SIGNATURE})


def _tampered_code(raw: bytes, position: int, new: int) -> ErrorCode:
    tampered = bytearray(raw)
    tampered[position] = new
    with pytest.raises(RemoteProtocolError) as caught:  # never accepted, never another error
        open_as_b(bytes(tampered))
    return caught.value.code


def test_every_single_byte_change_of_an_envelope_is_rejected_with_the_right_code() -> None:
    raw = ENVELOPE
    assert len(raw) > 2000
    seen: set[ErrorCode] = set()
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position in range(len(raw)):
        # one bit flipped, and one character swapped for another base64url character
        for new in (raw[position] ^ 1, alphabet[(alphabet.find(raw[position]) + 17) % 64]):
            if new == raw[position]:
                continue
            code = _tampered_code(raw, position, new)
            assert code in expected_codes(raw, position, new), (
                position,
                bytes([raw[position], new]),
                code,
            )
            seen.add(code)
    # The characterisation is not vacuous: each kind of damage occurred.
    assert seen >= {
        ErrorCode.MALFORMED,
        ErrorCode.BAD_SIGNATURE,
        ErrorCode.UNKNOWN_KEY,
        ErrorCode.UNKNOWN_SENDER,
    }


@SOME
@given(data=st.data())
def test_any_byte_value_anywhere_is_rejected(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(ENVELOPE) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != ENVELOPE[position]))
    assert _tampered_code(ENVELOPE, position, new) in expected_codes(ENVELOPE, position, new)


RECEIPT = make_receipt(
    envelope_id="env-p", envelope_sha256=digest(ENVELOPE), recipient=B.node_id, sender=A.node_id,
    disposition=Disposition.ACCEPTED, now=NOW, signing_key=B.signing,
)  # fmt: skip


def test_every_single_byte_change_of_a_receipt_is_rejected() -> None:
    assert verify_receipt(RECEIPT, keys=PEERS["B"]).envelope_id == "env-p"
    for position in range(len(RECEIPT)):
        for new in (RECEIPT[position] ^ 1, RECEIPT[position] ^ 0x40):
            tampered = bytearray(RECEIPT)
            tampered[position] = new
            with pytest.raises(RemoteProtocolError):
                verify_receipt(bytes(tampered), keys=PEERS["B"])


@SOME
@given(data=st.data())
def test_any_byte_value_anywhere_in_a_receipt_is_rejected(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(RECEIPT) - 1))
    tampered = bytearray(RECEIPT)
    tampered[position] = data.draw(st.integers(0, 255).filter(lambda b: b != RECEIPT[position]))
    with pytest.raises(RemoteProtocolError):
        verify_receipt(bytes(tampered), keys=PEERS["B"])


# --- whatever arrives, only ProtocolErrors ---------------------------------------------


def _every_reader(raw: bytes) -> None:
    for reader in (
        lambda: parse_envelope(raw),
        lambda: open_as_b(raw),
        lambda: open_as_b(raw, known=False),
        lambda: verify_discovery(raw),
        lambda: verify_discovery(raw, expected_node_id=A.node_id),
        lambda: verify_receipt(raw, keys=PEERS["B"]),
        lambda: jws.parse_compact(raw, typ="refnode-message+jws"),
        lambda: loads_strict(raw),
    ):
        only_protocol_errors(reader)


@SOME
@given(raw=st.binary(max_size=512))
def test_arbitrary_bytes(raw: bytes) -> None:
    _every_reader(raw)


@SOME
@given(value=json_values)
def test_arbitrary_json(value: Any) -> None:
    _every_reader(json.dumps(value).encode())


@SOME
@given(
    header=st.dictionaries(st.text(max_size=10), json_values, max_size=6),
    payload=st.binary(max_size=64),
)
def test_arbitrary_jws_shaped_objects(header: dict[str, Any], payload: bytes) -> None:
    for protected in (
        header,
        {**header, "alg": "Ed25519", "kid": A.signing.kid, "typ": "refnode-envelope+jws"},
    ):
        raw = dumps_canonical(
            {
                "protected": b64u_encode(json.dumps(protected).encode()),
                "payload": b64u_encode(payload),
                "signature": b64u_encode(bytes(64)),
            }
        )
        _every_reader(raw)


HEADER = loads_object(b64u_decode(loads_object(ENVELOPE)["protected"]))
SEALED_PAYLOAD = b64u_decode(loads_object(ENVELOPE)["payload"])


@SOME
@given(
    changes=st.dictionaries(
        st.sampled_from(sorted(HEADER) + ["rn_reply_to", "x"]), json_values, max_size=3
    ),
    drop=st.sets(st.sampled_from(sorted(HEADER)), max_size=2),
)
def test_signed_envelopes_with_odd_headers(changes: dict[str, Any], drop: set[str]) -> None:
    # Properly signed by A, so every check is reached: acceptance or a ProtocolError.
    header = {k: v for k, v in (HEADER | changes).items() if k not in drop}
    raw = jws.sign_flattened(header, SEALED_PAYLOAD, A.signing)
    only_protocol_errors(lambda: open_as_b(raw))
    only_protocol_errors(lambda: open_as_b(raw, known=False))


OFFER = referral_offer().wire()


@FEW
@given(
    changes=st.dictionaries(st.sampled_from(sorted(OFFER)), json_values, max_size=3),
    rn_type=st.sampled_from(["referral-offer/1.0", "referral-offer/1.9", "connection-request/1.0"]),
)
def test_signed_messages_with_odd_contents(changes: dict[str, Any], rn_type: str) -> None:
    raw = craft(OFFER | changes, rn_type=rn_type)
    only_protocol_errors(lambda: open_as_b(raw))
    only_protocol_errors(lambda: open_as_b(raw, known=False))  # connection-request: an introduction


@FEW
@given(
    discovery=st.one_of(
        st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
    ),
    changes=st.dictionaries(
        st.sampled_from(["invitation", "target_email", "direction", "x"]), json_values, max_size=2
    ),
)
def test_introductions_with_odd_discovery_documents(
    discovery: str, changes: dict[str, Any]
) -> None:
    request = {
        "connection_id": "c1",
        "requester_discovery": discovery,
        "target_email": "x@b.example",
        "requested_by": {"name": "Ann", "email": "ann@a.example"},
        "direction": "both",
    } | changes
    raw = craft(request, rn_type="connection-request/1.0")
    error = only_protocol_errors(lambda: open_as_b(raw, known=False))
    assert error is not None  # nothing but A's real discovery document can introduce A


DISCOVERY = loads_object(jws.parse_flattened(A.discovery(), typ=TYP_DISCOVERY).payload)


@SOME
@given(
    changes=st.dictionaries(st.sampled_from(sorted(DISCOVERY)), json_values, max_size=3),
    key_changes=st.dictionaries(
        st.sampled_from(["kid", "use", "jwk", "suite", "status"]), json_values, max_size=2
    ),
    which=st.integers(0, 3),
)
def test_signed_discovery_documents_with_odd_contents(
    changes: dict[str, Any], key_changes: dict[str, Any], which: int
) -> None:
    doc = DISCOVERY | changes
    keys = doc.get("keys")
    if isinstance(keys, list) and len(keys) > which and isinstance(keys[which], dict):
        doc["keys"] = [*keys[:which], keys[which] | key_changes, *keys[which + 1 :]]
    raw = jws.sign_flattened({"typ": TYP_DISCOVERY}, dumps_canonical(doc), A.identity)
    only_protocol_errors(lambda: verify_discovery(raw, expected_node_id=A.node_id))


def test_discovery_with_a_key_that_does_not_fit_its_suite_is_malformed() -> None:
    doc = json.loads(json.dumps(DISCOVERY))
    enc = [k for k in doc["keys"] if k["use"] == "enc"]
    enc[0]["suite"], enc[1]["suite"] = enc[1]["suite"], enc[0]["suite"]  # swap suites between keys
    raw = jws.sign_flattened({"typ": TYP_DISCOVERY}, dumps_canonical(doc), A.identity)
    with pytest.raises(RemoteProtocolError) as caught:
        verify_discovery(raw, expected_node_id=A.node_id)
    assert caught.value.code is ErrorCode.MALFORMED


RECEIPT_PAYLOAD = loads_object(jws.parse_flattened(RECEIPT, typ=TYP_RECEIPT).payload)


@SOME
@given(
    changes=st.dictionaries(
        st.sampled_from(sorted(RECEIPT_PAYLOAD) + ["error"]), json_values, max_size=3
    )
)
def test_signed_receipts_with_odd_contents(changes: dict[str, Any]) -> None:
    raw = jws.sign_flattened(
        {"typ": TYP_RECEIPT}, dumps_canonical(RECEIPT_PAYLOAD | changes), B.signing
    )
    only_protocol_errors(lambda: verify_receipt(raw, keys=PEERS["B"], envelope_id="env-p"))


URL = f"https://a.refnode.example/refnode/v1/invitations/inv-1?node={A.node_id}"
KEY = "rnk1_" + b64u_encode(bytes(range(32)))


@SOME
@given(
    url=st.one_of(
        st.text(max_size=120), st.text(max_size=20).map(lambda t: URL.replace("a.refnode", t))
    ),
    key=st.one_of(st.text(max_size=60), st.text(max_size=4).map(lambda t: KEY[:-4] + t)),
)
def test_parse_referral_only_raises_protocol_errors(url: str, key: str) -> None:
    only_protocol_errors(lambda: parse_referral(url, key))
    only_protocol_errors(lambda: parse_referral(URL, key))
    only_protocol_errors(lambda: parse_referral(url, KEY))


@SOME
@given(presented=st.text(max_size=60))
def test_redemption_of_arbitrary_secrets(presented: str) -> None:
    stored = secret_hash(KEY[5:])
    error = only_protocol_errors(
        lambda: check_redemption(
            stored_hash=stored,
            state=InvitationState.OPEN,
            expires_at=NOW + timedelta(days=1),
            presented_secret=presented,
            now=NOW,
        )  # fmt: skip
    )
    assert (error is None) == (presented == KEY[5:])
