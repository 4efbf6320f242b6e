"""Envelope vectors: the signatures of an envelope, the envelopes a receiver must refuse,
and the decrypt-only sealed envelopes.

HPKE sealing is randomised, so a sealed envelope cannot be reproduced byte for byte. The
sealed envelopes are made once by :func:`build_sealed_vectors` and kept as *decrypt-only*
vectors: they must open to the given message, and :func:`check_sealed_vectors` says when
they no longer do. Everything a receiver refuses before it decrypts (signature,
addressing, time, version) is pinned exactly, over a fixed placeholder payload that is
never decrypted: the spec's check order puts all of it before decryption.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from node.codegen.replay_vectors import replay_problems, replay_skeleton, seal_replay, unsealed
from node.codegen.vector_inputs import (
    NOW,
    PLACEHOLDER_PAYLOAD,
    VectorNode,
    flip_member,
    placeholder_envelope,
    referral_offer,
    routing_a_to_b,
    vector_nodes,
)
from protocol import jws
from protocol.encoding import b64u_decode, b64u_encode, dumps_canonical, loads_object
from protocol.envelope import Routing, digest, open_envelope, seal_envelope, sign_message
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.keys import SigningKey
from protocol.models import format_ts, parse_ts
from protocol.suites import SuiteId, hpke_info
from protocol.wire import MAX_CLOCK_SKEW_S, MAX_ENVELOPE_AGE_S, TYP_ENVELOPE, ErrorCode, MessageType

SEALED_FILE = "envelopes-decrypt-only.json"


def _sign_raw_header(header: dict[str, Any], payload: bytes, key: SigningKey) -> bytes:
    """A flattened JWS over exactly ``header`` (alg included): for headers we refuse."""
    protected = b64u_encode(dumps_canonical(header))
    body = b64u_encode(payload)
    signature = key.sign(f"{protected}.{body}".encode("ascii"))
    return dumps_canonical(
        {"payload": body, "protected": protected, "signature": b64u_encode(signature)}
    )


def _outer_header(
    routing: Routing, suite: SuiteId, enc_kid: str, key: SigningKey
) -> dict[str, Any]:
    return {
        "alg": jws.ALG,
        "kid": key.kid,
        "typ": TYP_ENVELOPE,
        "rn_v": 1,
        "rn_suite": suite.value,
        "rn_enc_kid": enc_kid,
        **routing.header(),
    }


def envelope_signing_file(nodes: dict[str, VectorNode]) -> dict[str, Any]:
    a, b = nodes["A"], nodes["B"]
    routing = routing_a_to_b("env-0001", nodes)
    inner = sign_message(referral_offer(), routing, a.signing)
    inner_protected, inner_payload, inner_sig = inner.decode("ascii").split(".")
    outer = placeholder_envelope(nodes, "env-0001")
    outer_obj = loads_object(outer)
    return {
        "description": (
            "Sign, encrypt, sign. The inner compact JWS is deterministic (Ed25519) and is what "
            "the decrypt-only envelopes open to. The outer JWS is shown over a placeholder "
            "payload, since the real payload (HPKE) is randomised. So outer.envelope is a "
            "signing vector only: its signature verifies, but delivered to B it does not open "
            "(outer.if_delivered: every check before decryption passes, HPKE open fails); "
            "envelopes that open are in envelopes-decrypt-only.json. The message is a valid "
            "referral-offer: it passes its schema and the checks of offers.json."
        ),
        "now": format_ts(NOW),
        "sender": "A",
        "recipient": "B",
        "message_type": MessageType.REFERRAL_OFFER.value,
        "message": referral_offer().wire(),
        "inner": {
            "protected_header": loads_object(b64u_decode(inner_protected)),
            "payload_json": b64u_decode(inner_payload).decode("utf-8"),
            "signing_input": f"{inner_protected}.{inner_payload}",
            "signature": inner_sig,
            "compact": inner.decode("ascii"),
            "signed_with": "A signing",
        },
        "hpke_info_hex": hpke_info(a.node_id, b.node_id, "env-0001").hex(),
        "outer": {
            "protected_header": loads_object(b64u_decode(outer_obj["protected"])),
            "payload_hex": PLACEHOLDER_PAYLOAD.hex(),
            "signing_input": f"{outer_obj['protected']}.{outer_obj['payload']}",
            "signature": outer_obj["signature"],
            "envelope": outer.decode("ascii"),
            "envelope_sha256": digest(outer),
            "signed_with": "A signing",
            "if_delivered": {"receiver": "B", "now": format_ts(NOW), "error": _opened(outer, a, b)},
        },
    }


def _opened(envelope: bytes, sender: VectorNode, receiver: VectorNode) -> str:
    """What ``receiver`` answers to ``envelope`` at NOW, knowing only ``sender``: the error
    code (a placeholder payload never opens)."""
    known = {sender.node_id: sender.peer_keys()}
    try:
        open_envelope(
            envelope,
            me=receiver.node_id,
            now=NOW,
            peer_keys=known.get,
            decryption_keys=receiver.decryption_keys(),
        )
    except RemoteProtocolError as refused:
        return refused.code.value
    raise AssertionError("a placeholder payload opened")


def _reject(
    name: str,
    envelope: bytes,
    error: ErrorCode,
    *,
    receiver: str = "B",
    known_peers: tuple[str, ...] = ("A",),
    now: datetime = NOW,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "envelope": envelope.decode("ascii"),
        "receiver": receiver,
        "known_peers": list(known_peers),
        "now": format_ts(now),
        "error": error.value,
    }
    if detail is not None:
        out["detail"] = detail
    return out


def envelopes_reject_file(nodes: dict[str, VectorNode]) -> dict[str, Any]:
    a, b = nodes["A"], nodes["B"]
    good = placeholder_envelope(nodes, "env-0002")
    retargeted = loads_object(good)
    header = loads_object(b64u_decode(retargeted["protected"]))
    header["rn_to"] = nodes["C"].node_id
    retargeted["protected"] = b64u_encode(dumps_canonical(header))
    base = _outer_header(
        routing_a_to_b("env-0003", nodes), SuiteId.X25519_CHACHA, b.x25519.kid, a.signing
    )
    return {
        "description": (
            "Envelopes a receiver must refuse, with the error code. Open each as 'receiver' "
            "at 'now', knowing the discovery documents of 'known_peers' (discovery.json). "
            "Each is refused before decryption (the check order of the spec), so the "
            "payload is a placeholder that is never decrypted."
        ),
        "placeholder_payload_hex": PLACEHOLDER_PAYLOAD.hex(),
        "must_reject": [
            _reject(
                "one character of the outer signature changed",
                flip_member(good, "signature", 10),
                ErrorCode.BAD_SIGNATURE,
            ),
            _reject(
                "one character of the payload changed",
                flip_member(good, "payload", 10),
                ErrorCode.BAD_SIGNATURE,
            ),
            _reject(
                "recipient changed in the header after signing",
                dumps_canonical(retargeted),
                ErrorCode.BAD_SIGNATURE,
            ),
            _reject("addressed to B, received by C", good, ErrorCode.WRONG_RECIPIENT, receiver="C"),
            _reject(
                "older than the maximum age",
                good,
                ErrorCode.EXPIRED,
                now=NOW + timedelta(seconds=MAX_ENVELOPE_AGE_S + 1),
            ),
            _reject(
                "created too far in the future",
                good,
                ErrorCode.NOT_YET_VALID,
                now=NOW - timedelta(seconds=MAX_CLOCK_SKEW_S + 1),
            ),
            _reject(
                "sender unknown, and not a connection-request",
                good,
                ErrorCode.UNKNOWN_SENDER,
                known_peers=(),
            ),
            _reject(
                "signed with the identity key, which signs only discovery documents",
                placeholder_envelope(nodes, "env-0004", key=a.identity),
                ErrorCode.UNKNOWN_KEY,
            ),
            _reject(
                "unsupported protocol major (rn_v 2)",
                _sign_raw_header(dict(base, rn_v=2), PLACEHOLDER_PAYLOAD, a.signing),
                ErrorCode.UNSUPPORTED_VERSION,
                detail={"supported": [1]},
            ),
            _reject(
                "unsupported message major (referral-offer/2.0)",
                _sign_raw_header(
                    dict(base, rn_type="referral-offer/2.0"), PLACEHOLDER_PAYLOAD, a.signing
                ),
                ErrorCode.UNSUPPORTED_VERSION,
                detail={"supported": [1]},
            ),
            _reject(
                "unknown message type",
                _sign_raw_header(
                    dict(base, rn_type="referral-bogus/1.0"), PLACEHOLDER_PAYLOAD, a.signing
                ),
                ErrorCode.UNSUPPORTED_TYPE,
            ),
            _reject(
                "alg is the deprecated EdDSA name",
                _sign_raw_header(dict(base, alg="EdDSA"), PLACEHOLDER_PAYLOAD, a.signing),
                ErrorCode.MALFORMED,
            ),
            _reject(
                "rn_reply_to is null (no member is ever null; omit it)",
                _sign_raw_header(dict(base, rn_reply_to=None), PLACEHOLDER_PAYLOAD, a.signing),
                ErrorCode.MALFORMED,
            ),
            _reject(
                "unknown header parameter in the same minor",
                _sign_raw_header(dict(base, rn_extra="x"), PLACEHOLDER_PAYLOAD, a.signing),
                ErrorCode.MALFORMED,
            ),
        ],
        "replay": (
            "The replay sequence needs envelopes that open (replayed is decided after "
            "decryption), so it is in envelopes-decrypt-only.json, under 'replay'."
        ),
    }


# --- decrypt-only sealed envelopes -----------------------------------------------------


def _sealed_skeleton(nodes: dict[str, VectorNode]) -> dict[str, Any]:
    """The decrypt-only file without its randomised envelopes."""
    a = nodes["A"]
    inner = sign_message(referral_offer(), routing_a_to_b("env-0001", nodes), a.signing).decode(
        "ascii"
    )
    window = [
        {"now": format_ts(NOW), "result": "ok"},
        {"now": format_ts(NOW + timedelta(seconds=MAX_ENVELOPE_AGE_S)), "result": "ok"},
        {
            "now": format_ts(NOW + timedelta(seconds=MAX_ENVELOPE_AGE_S + 1)),
            "result": ErrorCode.EXPIRED.value,
        },
        {"now": format_ts(NOW - timedelta(seconds=MAX_CLOCK_SKEW_S)), "result": "ok"},
        {
            "now": format_ts(NOW - timedelta(seconds=MAX_CLOCK_SKEW_S + 1)),
            "result": ErrorCode.NOT_YET_VALID.value,
        },
    ]
    vectors = [
        {
            "suite": suite.value,
            "enc_kid": nodes["B"].enc_key(suite).kid,
            "envelope_id": "env-0001",
            "message_type": MessageType.REFERRAL_OFFER.value,
            "message": referral_offer().wire(),
            "inner_jws": inner,
            "opens_at": window,
        }
        for suite in SuiteId
    ]
    return {
        "description": (
            "DECRYPT-ONLY vectors: whole envelopes from A to B, one per cipher suite. HPKE "
            "sealing is randomised, so these bytes cannot be regenerated; they were sealed "
            "once. Open each as B (knowing A's discovery document) at each 'opens_at' time: "
            "it must give 'result'. 'ok' means: every check of spec 8.5 passes and the "
            "envelope opens to the message and inner JWS shown here; the message is valid "
            "against its schema and passes the sharing and consent checks of 14.5 (see "
            "offers.json). The checks against the receiver's own state that follow (14.3: a "
            "connection with this id exists and allows A to send to B; the referral id is "
            "new) depend on that state and are not part of 'ok'."
        ),
        "sender": "A",
        "recipient": "B",
        "vectors": vectors,
        "replay": replay_skeleton(),
    }


def build_sealed_vectors() -> dict[str, Any]:
    """A fresh decrypt-only file. Randomised: HPKE sealing."""
    nodes = vector_nodes()
    a, b = nodes["A"], nodes["B"]
    doc = _sealed_skeleton(nodes)
    for vector in doc["vectors"]:
        suite = SuiteId(vector["suite"])
        raw = seal_envelope(
            referral_offer(),
            message_type=MessageType.REFERRAL_OFFER,
            envelope_id=vector["envelope_id"],
            sender=a.node_id,
            recipient=b.node_id,
            now=NOW,
            signing_key=a.signing,
            suite=suite,
            recipient_key=b.enc_key(suite).public,
        )
        vector["envelope"] = raw.decode("ascii")
        vector["envelope_sha256"] = digest(raw)
    seal_replay(doc["replay"], nodes)
    return doc


def _outcome(action: Callable[[], object]) -> str:
    try:
        action()
    except ProtocolError as exc:
        return exc.code.value
    return "ok"


def check_sealed_vectors(doc: dict[str, Any]) -> list[str]:
    """What is wrong with a stored decrypt-only file; empty when it is current.

    Current means: everything but the envelopes equals what we would write today, and
    every envelope opens, at every listed time, as the file says.
    """
    nodes = vector_nodes()
    a, b = nodes["A"], nodes["B"]
    stored = [
        {k: v for k, v in vector.items() if k not in ("envelope", "envelope_sha256")}
        for vector in doc.get("vectors", [])
    ]
    replay = unsealed(doc.get("replay", {}))
    problems: list[str] = []
    if dict(doc, vectors=stored, replay=replay) != _sealed_skeleton(nodes):
        problems.append("the message, keys or expectations changed since the envelopes were sealed")
    a_keys = a.peer_keys()
    for vector in doc.get("vectors", []):
        raw = str(vector.get("envelope", "")).encode("ascii")
        if digest(raw) != vector.get("envelope_sha256"):
            problems.append(f"{vector.get('suite')}: envelope_sha256 does not match")
        for case in vector.get("opens_at", []):
            moment = parse_ts(case["now"])

            def open_it(
                moment: datetime = moment, raw: bytes = raw, vector: dict[str, Any] = vector
            ) -> None:
                opened = open_envelope(
                    raw,
                    me=b.node_id,
                    now=moment,
                    peer_keys={a.node_id: a_keys}.get,
                    decryption_keys=b.decryption_keys(),
                )
                if (
                    opened.message.wire() != vector["message"]
                    or opened.inner_jws.decode("ascii") != vector["inner_jws"]
                ):
                    raise RemoteProtocolError(ErrorCode.MALFORMED, "opened to another message")

            got = _outcome(open_it)
            if got != case["result"]:
                problems.append(
                    f"{vector.get('suite')} at {case['now']}: {got}, expected {case['result']}"
                )
    problems += replay_problems(doc.get("replay", {}), nodes)
    return problems
