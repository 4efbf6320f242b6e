"""The one place where error codes become HTTP statuses, and the error body's shape."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.base.ratelimit import retry_after
from protocol.errors import ProtocolError
from protocol.wire import ErrorCode

E = ErrorCode

HTTP_STATUS: dict[ErrorCode, int] = {
    E.MALFORMED: 400,
    E.EXPIRED: 400,
    E.NOT_YET_VALID: 400,
    E.UNSUPPORTED_VERSION: 400,
    E.UNSUPPORTED_TYPE: 400,
    E.UNSUPPORTED_SUITE: 400,
    E.DECRYPT_FAILED: 400,
    E.WRONG_RECIPIENT: 400,
    E.FINGERPRINT_MISMATCH: 400,
    E.CONSENT_REQUIRED: 400,
    E.FIELD_NOT_ALLOWED: 400,
    E.BAD_SIGNATURE: 401,
    E.UNKNOWN_KEY: 401,
    E.UNKNOWN_SENDER: 403,
    E.NOT_CONNECTED: 403,
    E.DIRECTION_NOT_ALLOWED: 403,
    E.INVITATION_INVALID: 403,
    E.INVITATION_EXPIRED: 403,
    E.INVITATION_USED: 403,
    E.INVITATION_REVOKED: 403,
    E.UNKNOWN_USER: 403,
    E.UNKNOWN_SUBJECT: 404,
    E.REPLAYED: 409,
    E.INVALID_TRANSITION: 409,
    E.OUT_OF_ORDER: 409,
    E.TOO_LARGE: 413,
    E.RATE_LIMITED: 429,
    E.INTERNAL: 500,
}

#: Codes of refusals about the HTTP exchange itself rather than what it carries (a peer
#: acts on their status: docs/protocol.md, section 15).
HTTP_ERROR_CODES: dict[int, str] = {
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    413: "too_large",
    503: "unavailable",
}


def is_retryable(status: int) -> bool:
    """After these a sender retries the identical bytes later: 408, 429 and every 5xx."""
    return status in (408, 429) or status >= 500


class ApiError(Exception):
    """An admin-API error: a stable code, a message saying what to fix, and a status
    (a 429 says, in ``retry_after_s``, when to come back)."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 retry_after_s: float | None = None, **detail: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s
        self.detail = detail


def error_body(code: str, message: str, *, field: str | None = None,
               detail: dict[str, Any] | None = None, receipt: bytes | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    if detail:
        error["detail"] = detail
    body: dict[str, Any] = {"error": error}
    if receipt is not None:
        body["receipt"] = receipt.decode("ascii")
    return body


def protocol_error_response(exc: ProtocolError, *, receipt: bytes | None = None) -> web.Response:
    status = HTTP_STATUS.get(exc.code, 400)
    headers = {"Retry-After": retry_after(exc.detail.get("retry_after_s", 60))} if status == 429 else None
    detail = {k: v for k, v in exc.detail.items() if k in ("supported", "errors", "ours", "theirs")}
    return web.json_response(
        error_body(exc.code.value, exc.message, detail=detail, receipt=receipt), status=status, headers=headers
    )


def api_error_response(exc: ApiError) -> web.Response:
    headers = {"Retry-After": retry_after(exc.retry_after_s)} if exc.retry_after_s is not None else None
    return web.json_response(error_body(exc.code, exc.message, field=exc.field, detail=exc.detail or None),
                             status=exc.status, headers=headers)
