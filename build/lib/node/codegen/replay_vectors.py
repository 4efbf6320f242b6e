"""The replay vector of envelopes-decrypt-only.json: two real sealed envelopes from A to B
with the same envelope id and different bytes, and what a receiver answers when they are
delivered in turn (spec 8.5 step R, 8.7, 10). ``replayed`` is decided only once an
envelope opens, so both must be real: a placeholder payload would give decrypt_failed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from node.codegen.vector_inputs import NOW, VectorNode, referral_offer
from protocol.envelope import digest, open_envelope, seal_envelope
from protocol.errors import ProtocolError
from protocol.models import format_ts
from protocol.suites import SuiteId
from protocol.wire import MAX_ENVELOPE_AGE_S, ErrorCode, MessageType

#: The two envelopes of the replay sequence: the same id, made one second apart.
REPLAY_TIMES = {"first": NOW, "second": NOW + timedelta(seconds=1)}


def replay_skeleton() -> dict[str, Any]:
    """The replay section without its randomised envelopes."""
    late = NOW + timedelta(seconds=MAX_ENVELOPE_AGE_S + 1)
    return {
        "description": (
            "De-duplication (spec 8.5 step R, 8.7, 10). 'first' and 'second' are real "
            "envelopes from A to B with the same envelope id and different bytes; both open "
            "(as B, knowing A's discovery document) to the message here, 'second' one "
            "second later. B has an active connection 'conn-ab' with A in which A may refer "
            "to B. Deliver them in the order of 'sequence', each at its 'now', to one "
            "receiver that remembers what it accepted. 'accepted': a new receipt, "
            "disposition accepted, naming the SHA-256 of what was sent. 'original_receipt': "
            "200 with the receipt of step 'receipt_of', byte for byte, and nothing applied "
            "(also after the time window: step R comes before the time checks). Otherwise "
            "the error code: 'replayed' (409, with a signed rejected receipt) for other "
            "bytes under an id already accepted, decided after the envelope opens; "
            "'expired' when the time window refuses it first."
        ),
        "envelope_id": "env-0009",
        "suite": SuiteId.X25519_CHACHA.value,
        "message_type": MessageType.REFERRAL_OFFER.value,
        "message": referral_offer().wire(),
        "sequence": [
            {"step": 1, "deliver": "first", "now": format_ts(NOW), "result": "accepted"},
            {
                "step": 2,
                "deliver": "first",
                "now": format_ts(NOW + timedelta(seconds=5)),
                "result": "original_receipt",
                "receipt_of": 1,
            },
            {
                "step": 3,
                "deliver": "second",
                "now": format_ts(NOW + timedelta(seconds=10)),
                "result": ErrorCode.REPLAYED.value,
            },
            {
                "step": 4,
                "deliver": "first",
                "now": format_ts(late),
                "result": "original_receipt",
                "receipt_of": 1,
            },
            {
                "step": 5,
                "deliver": "second",
                "now": format_ts(late + timedelta(seconds=1)),
                "result": ErrorCode.EXPIRED.value,
            },
        ],
    }


def seal_replay(replay: dict[str, Any], nodes: dict[str, VectorNode]) -> None:
    """Seal the two envelopes into ``replay``. Randomised: HPKE sealing."""
    a, b = nodes["A"], nodes["B"]
    for name, made in REPLAY_TIMES.items():
        raw = seal_envelope(
            referral_offer(),
            message_type=MessageType.REFERRAL_OFFER,
            envelope_id=replay["envelope_id"],
            sender=a.node_id,
            recipient=b.node_id,
            now=made,
            signing_key=a.signing,
            suite=SuiteId(replay["suite"]),
            recipient_key=b.x25519.public,
        )
        replay[name] = raw.decode("ascii")
        replay[f"{name}_sha256"] = digest(raw)


def unsealed(replay: dict[str, Any]) -> dict[str, Any]:
    """``replay`` without its envelopes and their digests, to compare with the skeleton."""
    sealed = {*REPLAY_TIMES, *(f"{name}_sha256" for name in REPLAY_TIMES)}
    return {k: v for k, v in replay.items() if k not in sealed}


def replay_problems(replay: dict[str, Any], nodes: dict[str, VectorNode]) -> list[str]:
    """Both replay envelopes open to the message, with their id, time and digest."""
    a, b = nodes["A"], nodes["B"]
    problems = []
    for name, made in REPLAY_TIMES.items():
        raw = str(replay.get(name, "")).encode("ascii")
        if digest(raw) != replay.get(f"{name}_sha256"):
            problems.append(f"replay {name}: sha256 does not match")
        try:
            opened = open_envelope(
                raw,
                me=b.node_id,
                now=NOW,
                peer_keys={a.node_id: a.peer_keys()}.get,
                decryption_keys=b.decryption_keys(),
            )
        except ProtocolError as exc:
            problems.append(f"replay {name}: {exc.code.value}")
            continue
        header = opened.parsed.header
        if (
            opened.message.wire() != replay["message"]
            or header.rn_id != replay["envelope_id"]
            or header.rn_iat != format_ts(made)
        ):
            problems.append(f"replay {name}: opened to another envelope")
    return problems
