"""Byte-level encodings: base64url without padding and strict JSON.

Strict JSON means: UTF-8, no duplicate member names, no floats, no NaN/Infinity. Money
and other decimals travel as strings. These rules remove the usual sources of signature
mismatches between implementations; since we sign exact bytes and never re-serialize
before checking, they matter for what we *accept*, not for how we verify.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from protocol.errors import RemoteProtocolError
from protocol.wire import ErrorCode


def b64u_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str | bytes, *, what: str = "value") -> bytes:
    """Decode base64url without padding; anything else is ``malformed``."""
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"{what} is not base64url") from None
    else:
        raw = text
    if b"=" in raw or b"+" in raw or b"/" in raw or len(raw) % 4 == 1:
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"{what} is not unpadded base64url")
    try:
        decoded = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"{what} is not base64url") from None
    # Reject non-canonical encodings (stray low bits in the last character), so that
    # one byte string has exactly one text form.
    if b64u_encode(decoded).encode("ascii") != raw:
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"{what} is not canonical base64url")
    return decoded


def _reject_float(text: str) -> Any:
    raise RemoteProtocolError(ErrorCode.MALFORMED, "floats are not allowed; send decimals as strings")


def _reject_constant(text: str) -> Any:
    raise RemoteProtocolError(ErrorCode.MALFORMED, f"{text} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"duplicate member {key!r}")
        out[key] = value
    return out


def loads_strict(data: bytes | str, *, what: str = "document") -> Any:
    """Parse strict JSON. Every failure is a :class:`RemoteProtocolError` (``malformed``)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"{what} is not UTF-8") from None
    elif not data.isascii():
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"{what} is not UTF-8") from None
    try:
        value = json.loads(
            data,
            parse_float=_reject_float,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicates,
        )
    except RemoteProtocolError:
        raise
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"{what} is not valid JSON: {exc}") from None
    # A "\ud800" escape decodes to a lone surrogate, which is no Unicode text (I-JSON,
    # RFC 7493, section 2.1): it cannot be encoded again, stored, or compared reliably.
    if "\\u" in data:
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"{what} has a lone surrogate") from None
        except RecursionError:
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"{what} is nested too deeply") from None
    return value


def loads_object(data: bytes | str, *, what: str = "document") -> dict[str, Any]:
    value = loads_strict(data, what=what)
    if not isinstance(value, dict):
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"{what} must be a JSON object")
    return value


def dumps_canonical(value: Any) -> bytes:
    """The bytes we write: sorted keys, no spaces, UTF-8. Receivers need not reproduce it."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
