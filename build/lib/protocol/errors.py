"""Errors of the protocol core.

Every error carries a stable :class:`~protocol.wire.ErrorCode` from the spec's error
table and a message for people. None carries an HTTP status: ``node/`` maps codes to
statuses in one place.

Like h11, we separate who broke the protocol: :class:`RemoteProtocolError` is raised
while reading what a peer sent us; :class:`LocalProtocolError` when our own caller asks
for something the protocol does not allow.
"""

from __future__ import annotations

from typing import Any

from protocol.wire import ErrorCode


class ProtocolError(Exception):
    """Base class: ``code`` is stable, ``message`` is for people, ``detail`` is data."""

    def __init__(self, code: ErrorCode, message: str, **detail: Any) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.detail = detail
        #: True once the envelope's outer signature verified: the receiver knows who sent
        #: it, so it answers the refusal with a signed receipt.
        self.sender_verified = False


class RemoteProtocolError(ProtocolError):
    """What the peer sent breaks the protocol (bad signature, malformed, expired, ...)."""


class LocalProtocolError(ProtocolError):
    """Our own caller asked for something the protocol forbids (a bad transition, ...)."""
