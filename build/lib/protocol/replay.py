"""De-duplication: what a receiver does with an (sender, envelope id) it has seen before.

The receiver keeps, for every envelope it accepted, the SHA-256 of its exact bytes and
the receipt it gave, for at least ``MAX_ENVELOPE_AGE_S``. Older envelopes are refused as
``expired`` by the time window, so nothing older needs remembering.
"""

from __future__ import annotations

from enum import StrEnum

from protocol.errors import RemoteProtocolError
from protocol.wire import ErrorCode


class Seen(StrEnum):
    NEW = "new"
    #: The same bytes again: answer with the stored receipt and apply nothing.
    DUPLICATE = "duplicate"


def classify(stored_sha256: str | None, received_sha256: str) -> Seen:
    """NEW, DUPLICATE, or raise ``replayed`` for the same id with different bytes."""
    if stored_sha256 is None:
        return Seen.NEW
    if stored_sha256 == received_sha256:
        return Seen.DUPLICATE
    raise RemoteProtocolError(
        ErrorCode.REPLAYED, "this envelope id was already used for different bytes"
    )
