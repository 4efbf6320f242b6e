"""The strict JSON rules of docs/protocol.md section 3.2, as cases of the negative
matrix: bodies that break them before anything is signed (refused with no receipt), and
messages that break them inside a well-signed, well-sealed envelope (refused with a
signed receipt, as ``malformed``).

Each message case is a status update for a referral that does not exist, so a receiver
that read the JSON leniently would answer ``unknown_subject``: only the strict rule
gives ``malformed``."""

from __future__ import annotations

from collections.abc import Callable

from conformance import messages as m
from conformance.case import Case
from conformance.forge import Sent
from conformance.peer import new_id
from conformance.session import Session
from protocol.wire import MAJOR, MAX_JSON_DEPTH, MAX_JSON_INTEGER


def _status(seq: bytes = b"1", stage: bytes = b'"Stage"', extra: bytes = b"") -> bytes:
    rid = new_id("rfl").encode()
    return (b'{"at":"2026-01-01T00:00:00Z","referral_id":"' + rid + b'","seq":' + seq
            + b',"stage":' + stage + b',"status":"accepted"' + extra + b"}")


def _nested(depth: int) -> bytes:
    """A JSON value of ``depth`` nested arrays."""
    return b"[" * depth + b"1" + b"]" * depth


#: A minor newer than any receiver's: its unknown members are dropped, not refused
#: (section 13b), so a deep unknown member tests the depth rule and nothing else.
NEWER_STATUS = m.STATUS.split("/")[0] + f"/{MAJOR}.999"


#: Message payloads (exact bytes) that strict JSON refuses.
MESSAGES: list[tuple[str, Callable[[], bytes]]] = [
    ("duplicate member", lambda: _status(extra=b',"seq":1')),
    ("a number with a fraction", lambda: _status(seq=b"1.0")),
    ("a number with an exponent", lambda: _status(seq=b"1e0")),
    ("NaN", lambda: _status(seq=b"NaN")),
    ("a lone surrogate", lambda: _status(stage=b'"\\ud800"')),
    ("a byte order mark", lambda: b"\xef\xbb\xbf" + _status()),
    ("invalid UTF-8", lambda: _status(stage=b'"\xc3\x28"')),
    ("an array, not an object", lambda: b"[" + _status() + b"]"),
    ("nested 10000 deep", lambda: _status(stage=b"[" * 10000 + b"]" * 10000)),
    ("nested 33 deep", lambda: _status(extra=b',"x":' + _nested(MAX_JSON_DEPTH))),
    ("an integer beyond 2^53 - 1", lambda: _status(seq=str(MAX_JSON_INTEGER + 1).encode())),
    ("an integer below -(2^53 - 1)", lambda: _status(extra=b',"x":' + str(-MAX_JSON_INTEGER - 1).encode())),
    ("null for an optional member", lambda: _status(stage=b"null")),
    ("null for an unknown member", lambda: _status(extra=b',"x":null')),
    ("null in an array", lambda: _status(extra=b',"x":[1,null]')),
]

#: Message payloads (exact bytes) at the limits strict JSON accepts: the receiver reads
#: on, and answers ``unknown_subject`` for the referral that does not exist.
LIMITS: list[tuple[str, Callable[[], bytes]]] = [
    ("nested 32 deep is accepted", lambda: _status(extra=b',"x":' + _nested(MAX_JSON_DEPTH - 1))),
    ("an integer of 2^53 - 1 is accepted", lambda: _status(seq=str(MAX_JSON_INTEGER).encode())),
]

#: Whole bodies, changed from a good envelope, that strict JSON refuses.
BODIES: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("duplicate member", lambda raw: b'{"payload":"AAAA",' + raw[1:]),
    ("a byte order mark", lambda raw: b"\xef\xbb\xbf" + raw),
    ("invalid UTF-8", lambda raw: raw[:-1] + b',"x":"\xff"}'),
    ("an array, not an object", lambda raw: b"[" + raw + b"]"),
    ("trailing text", lambda raw: raw + b"x"),
]


def _message(payload: Callable[[], bytes]) -> Callable[[Session], Sent]:
    """Sent as a newer minor, so that an unknown member is dropped, not refused (13b)."""
    return lambda s: s.envelope(payload(), NEWER_STATUS)


def _body(change: Callable[[bytes], bytes]) -> Callable[[Session], Sent]:
    def build(s: Session) -> Sent:
        sent = s.envelope({"connection_id": s.connection_id or new_id("con")}, m.CONFIRM)
        return Sent(change(sent.raw), sent.envelope_id, sent.sha256, sent.message_type)
    return build


JSON_CASES: list[Case] = [
    *(Case(f"strict JSON in a message: {name}", "3.2, 8.5 step 13a", "malformed", True, _message(payload))
      for name, payload in MESSAGES),
    *(Case(f"strict JSON in a message: {name}", "3.2, 8.5 step 13a", "unknown_subject", True, _message(payload))
      for name, payload in LIMITS),
    *(Case(f"strict JSON in the body: {name}", "3.2, 8.5 step 2a", "malformed", False, _body(change),
           connected=False) for name, change in BODIES),
    Case("strict JSON in the protected header: a float", "3.2, 8.5 step 2c", "malformed", False,
         lambda s: s.envelope({"connection_id": "con_x"}, m.CONFIRM, outer={"rn_v": 1.0}), connected=False),
    Case("null in the protected header: rn_reply_to null", "3.2, 8.5 step 3c", "malformed", False,
         lambda s: s.envelope({"connection_id": "con_x"}, m.CONFIRM, outer={"rn_reply_to": None}), connected=False),
    Case("null in the inner header: rn_reply_to null", "3.2, 8.5 step 10b", "malformed", True,
         lambda s: s.envelope({"connection_id": s.connection_id or new_id("con")}, m.CONFIRM,
                              inner={"rn_reply_to": None})),
]
