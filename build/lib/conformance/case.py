"""One entry of the negative matrix (see :mod:`conformance.checks_negative`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conformance.forge import Sent

if TYPE_CHECKING:
    from conformance.session import Session


@dataclass(frozen=True)
class Case:
    name: str
    #: Where docs/protocol.md states the rule.
    section: str
    #: The error code expected (its HTTP status follows from section 15).
    code: str
    #: Whether a signed rejected receipt must come with the refusal (section 9.3).
    signed: bool
    #: The envelope that breaks the rule.
    build: Callable[[Session], Sent]
    #: The Content-Type to post it with.
    content_type: str = "application/jose+json"
    #: True to send the body chunked, with no Content-Length (section 8.5 step 1c).
    chunked: bool = False
    #: True when it is a referral offer, which needs a direction that lets us refer.
    offer: bool = False
    #: False for the cases refused before the sender is authenticated (steps 1 to 5),
    #: which run with or without a connection.
    connected: bool = True
