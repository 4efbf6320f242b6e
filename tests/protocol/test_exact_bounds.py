"""The receiver's bounds at their exact edges, which properties drawn at random rarely hit:
the time window is inclusive at both ends (docs/protocol.md 8.5, steps 7b and 7c), and so is
the receiver's size limit (step 1)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from protocol_support import NOW, PEERS, A, B, open_as_b
from test_properties import ENVELOPE

from protocol.envelope import check_time_window, open_envelope
from protocol.errors import RemoteProtocolError
from protocol.wire import MAX_CLOCK_SKEW_S, MAX_ENVELOPE_AGE_S, ErrorCode


@pytest.mark.parametrize(("offset_s", "code"), [
    (-MAX_CLOCK_SKEW_S, None), (-MAX_CLOCK_SKEW_S - 1, ErrorCode.NOT_YET_VALID),
    (MAX_ENVELOPE_AGE_S, None), (MAX_ENVELOPE_AGE_S + 1, ErrorCode.EXPIRED), (0, None),
])
def test_the_time_window_includes_both_bounds(offset_s: int, code: ErrorCode | None) -> None:
    """Created at NOW, received at NOW + offset."""
    now = NOW + timedelta(seconds=offset_s)
    if code is None:
        open_as_b(ENVELOPE, now=now)
        check_time_window(NOW, now)
    else:
        with pytest.raises(RemoteProtocolError) as raised:
            open_as_b(ENVELOPE, now=now)
        assert raised.value.code is code


def test_an_envelope_of_exactly_the_receivers_limit_is_read() -> None:
    """A receiver may set its own limit (max_bytes): an envelope of that size is within it."""
    size = len(ENVELOPE)
    opened = open_envelope(ENVELOPE, me=B.node_id, now=NOW, peer_keys={A.node_id: PEERS["A"]}.get,
                           decryption_keys=B.decryption_keys(), max_bytes=size)  # fmt: skip
    assert opened.parsed.raw == ENVELOPE
    with pytest.raises(RemoteProtocolError) as raised:
        open_envelope(ENVELOPE, me=B.node_id, now=NOW, peer_keys={A.node_id: PEERS["A"]}.get,
                      decryption_keys=B.decryption_keys(), max_bytes=size - 1)  # fmt: skip
    assert raised.value.code is ErrorCode.TOO_LARGE
    assert raised.value.message == f"envelope is {size} bytes; the limit is {size - 1}"
