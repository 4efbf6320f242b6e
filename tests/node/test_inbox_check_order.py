"""Spec 7.3 and 8.5 steps 1a to 1c, through a real node over real HTTP: the declared size
(413), then the Content-Type (400 malformed), both before the body is read, then the size
of the body as it streams in (413), then step 2 (the body as strict JSON). Before, 7.3 did
not place the Content-Type check among them (issue 15, gap 10)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
from conftest import RunningNode

from protocol.wire import INBOX_PATH, MEDIA_TYPE_JOSE_JSON

LIMIT = 65536  # the smallest max_envelope_bytes a node may have (4.7)


async def _post(node: RunningNode, data: bytes | AsyncIterator[bytes], content_type: str,
                **headers: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(node.url + INBOX_PATH, data=data,
                                headers={"Content-Type": content_type, **headers}) as answer:
            return answer.status, json.loads(await answer.read())


async def _chunks(total: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * 8192
        sent += 8192


async def test_the_checks_before_step_2_come_in_the_spec_order(node_factory):
    node = await node_factory("Broker", max_envelope_bytes=LIMIT)
    big = b"x" * (LIMIT + 1)

    # 1a before 1b: a declared size over the limit is too_large whatever the type says.
    status, body = await _post(node, big, "text/plain")
    assert (status, body["error"]["code"]) == (413, "too_large")

    # 1b before 1c: a streamed body over the limit with the wrong type is malformed
    # (the type is refused before a byte of the body is read).
    status, body = await _post(node, _chunks(LIMIT * 2), "text/plain")
    assert (status, body["error"]["code"]) == (400, "malformed")
    assert "Content-Type" in body["error"]["message"] and "receipt" not in body

    # 1c: the right type, streamed over the limit: too_large.
    status, body = await _post(node, _chunks(LIMIT * 2), MEDIA_TYPE_JOSE_JSON)
    assert (status, body["error"]["code"]) == (413, "too_large")

    # 1b before step 2: a small body that is not JSON, with the wrong type, is refused
    # for its type; with the right type (parameters and letter case aside) for its body.
    status, body = await _post(node, b"not json", "application/json")
    assert (status, body["error"]["code"]) == (400, "malformed")
    assert "Content-Type" in body["error"]["message"]
    for content_type in (MEDIA_TYPE_JOSE_JSON, "application/jose+json; charset=utf-8", "Application/JOSE+JSON"):
        status, body = await _post(node, b"not json", content_type)
        assert (status, body["error"]["code"]) == (400, "malformed"), content_type
        assert "Content-Type" not in body["error"]["message"], content_type
