"""Reading a multipart upload form (``raw_body`` pages) with the API's body rules: each
step must arrive within ``body_timeout_s`` (else 408, connection closed, as
``node.http.bodies``), a text field is small, and a form has few parts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from aiohttp import BodyPartReader, MultipartReader

from node.crm.errors import CrmError
from node.http.bodies import BodyTimeout
from node.web.views import View

T = TypeVar("T")

#: The most of a file read at once.
PIECE_BYTES = 64 * 1024
#: The most parts an upload form may have.
MAX_PARTS = 8
#: The longest text field of an upload form.
MAX_TEXT_BYTES = 4096


async def timed(view: View, step: Awaitable[T]) -> T:
    """``step``, or 408 if it does not arrive within ``body_timeout_s``."""
    try:
        async with asyncio.timeout(view.config.body_timeout_s):
            return await step
    except TimeoutError:
        raise BodyTimeout(view.request, view.config.body_timeout_s) from None


async def parts(view: View) -> AsyncIterator[BodyPartReader]:
    """The form's parts, in order; a refusal for a nested or an extra part. The caller
    reads each part (or leaves it: it is skipped)."""
    if not view.request.content_type.startswith("multipart/form-data"):
        raise CrmError("invalid", "Send this form as multipart/form-data, as its page does.", "file")
    reader: MultipartReader = await view.request.multipart()
    for _ in range(MAX_PARTS):
        part = await timed(view, reader.next())
        if part is None:
            return
        if not isinstance(part, BodyPartReader):
            raise CrmError("invalid", "The form has a part this page does not take.", "file")
        yield part
        await timed(view, part.release())
    raise CrmError("invalid", "The form has more parts than this page takes.", "file")


async def pieces(view: View, part: BodyPartReader) -> AsyncIterator[bytes]:
    """A file part's bytes, a piece at a time."""
    while piece := await timed(view, part.read_chunk(PIECE_BYTES)):
        yield piece


async def text(view: View, part: BodyPartReader) -> str:
    """A text field's value (UTF-8), stripped."""
    data = bytearray()
    async for piece in pieces(view, part):
        data += piece
        if len(data) > MAX_TEXT_BYTES:
            raise CrmError("invalid", f"The field {part.name or ''} is too long.", part.name)
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CrmError("invalid", f"The field {part.name or ''} is not UTF-8 text.", part.name) from None
