"""Version strings: ``name/major.minor``.

An unknown major is refused (``unsupported_version``, with the supported majors); a newer
minor than ours is accepted and members we do not know are ignored.
"""

from __future__ import annotations

import re

from protocol.errors import RemoteProtocolError
from protocol.wire import MESSAGE_MINOR, SUPPORTED_MAJORS, ErrorCode

_VERSIONED = re.compile(r"^([a-z][a-z-]{0,63})/([0-9]{1,4})\.([0-9]{1,4})$")


def parse_versioned(text: object, *, expected: str | None = None) -> tuple[str, int]:
    """Split ``name/major.minor``; return ``(name, minor)`` after checking the major."""
    if not isinstance(text, str):
        raise RemoteProtocolError(ErrorCode.MALFORMED, "type must be a string name/major.minor")
    match = _VERSIONED.fullmatch(text)  # fullmatch: "$" alone would allow a final "\n"
    if match is None:
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"type {text!r} is not name/major.minor")
    name, major, minor = match.group(1), int(match.group(2)), int(match.group(3))
    if expected is not None and name != expected:
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"type must be {expected}, not {name}")
    if major not in SUPPORTED_MAJORS:
        raise RemoteProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"{name} major version {major} is not supported",
            supported=list(SUPPORTED_MAJORS),
        )
    return name, minor


def is_newer_minor(name: str, minor: int) -> bool:
    """True when the peer speaks a newer minor of ``name`` than we do."""
    return minor > MESSAGE_MINOR.get(name, 0)
