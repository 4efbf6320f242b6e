"""Reading a request body with a deadline and a size limit.

aiohttp waits for a body as long as the client keeps the connection open: a chunked body
that never ends, or one byte a minute, holds a connection (and a file) for ever. Every
route that reads a body reads it here: in full within ``timeout_s`` (``body_timeout_s``),
or the request is answered ``408`` with the usual JSON error (code ``timeout``) and its
connection is closed as soon as that answer is written, rather than after the rest of a
body that may never come.

Routes that never read their body are covered by the server: after their answer it reads
and drops what is left for at most ``lingering_time`` (see :mod:`node.http.connections`),
then closes.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import StreamReader, web

from node.base.errors import HTTP_ERROR_CODES, error_body

_CHUNK = 65536


class BodyTimeout(web.HTTPRequestTimeout):
    """``408`` with a JSON error body; the connection closes once it is written."""

    def __init__(self, request: web.BaseRequest, timeout_s: float) -> None:
        message = f"the request body did not arrive within {timeout_s:g} s"
        super().__init__(text=json.dumps(error_body(HTTP_ERROR_CODES[408], message)), content_type="application/json")
        self.force_close()  # "Connection: close"
        self._connection = request.protocol

    async def write_eof(self, data: bytes = b"") -> None:
        await super().write_eof(data)
        # Close now, not after aiohttp has read (and dropped) what is left of the body for
        # its lingering time: the rest may never come. The answer is already in the
        # transport, which sends what it holds before it closes.
        self._connection.force_close()


class BodyTooLarge(web.HTTPRequestEntityTooLarge):
    """``413`` with the JSON error body of the protocol's ``too_large``."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit, text=json.dumps(error_body(HTTP_ERROR_CODES[413], f"the limit is {limit} bytes")),
                         content_type="application/json")


async def read_body(request: web.BaseRequest, *, timeout_s: float, limit: int | None = None) -> bytes:
    """The whole body of ``request``, read within ``timeout_s`` seconds of this call.

    Raises :class:`BodyTimeout` (408, code ``timeout``) when it has not all arrived by
    then, and :class:`BodyTooLarge` (413, code ``too_large``) as soon as it exceeds
    ``limit`` bytes (default: the request's ``client_max_size``). Both are answers:
    raise them on, and aiohttp (or the error middleware) sends them as they are.
    """
    limit = request.client_max_size if limit is None else limit
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)
    if request.content.is_eof():
        # All of it is here already (most bodies, which come with their head): nothing to
        # wait for, so no timer (one costs about as much as the rest of this read).
        return await _read(request.content, limit)
    try:
        async with asyncio.timeout(timeout_s):
            return await _read(request.content, limit)
    except TimeoutError:
        raise BodyTimeout(request, timeout_s) from None


async def _read(content: StreamReader, limit: int) -> bytes:
    body = bytearray()
    async for chunk in content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return bytes(body)


__all__ = ["BodyTimeout", "BodyTooLarge", "read_body"]
