"""The federation endpoints of docs/protocol.md: discovery and the inbox. Thin: parse the
request, call the node, answer."""

from __future__ import annotations

from aiohttp import web

from node.base.errors import error_body, protocol_error_response
from node.base.metrics import NodeMetrics
from node.base.ratelimit import retry_after
from node.federation.runtime import InboxResult
from node.http.appkeys import NODE
from node.http.bodies import read_body
from node.http.clients import client_address
from protocol.errors import RemoteProtocolError
from protocol.wire import DISCOVERY_PATH, INBOX_PATH, MEDIA_TYPE_JOSE_JSON, ErrorCode

routes = web.RouteTableDef()


@routes.get(DISCOVERY_PATH)
async def discovery(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return web.Response(body=node.discovery, content_type=MEDIA_TYPE_JOSE_JSON)


@routes.post(INBOX_PATH)
async def inbox(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = await read_envelope(request, node.config.max_envelope_bytes, node.config.body_timeout_s, node.metrics)
    if isinstance(body, web.Response):
        return body
    return inbox_response(await node.receive(body, client=client_address(request)))


async def read_envelope(request: web.BaseRequest, limit: int, timeout_s: float,
                        metrics: NodeMetrics) -> bytes | web.Response:
    """The request's body, or the refusal to send when it is not an envelope we take:
    the size is checked while the body streams in, which must end within ``timeout_s``
    (else :func:`~node.http.bodies.read_body` raises the ``408``)."""
    refusal = None
    if request.content_length is not None and request.content_length > limit:
        refusal = RemoteProtocolError(ErrorCode.TOO_LARGE, f"the limit is {limit} bytes")
    elif request.content_type != MEDIA_TYPE_JOSE_JSON:
        refusal = RemoteProtocolError(ErrorCode.MALFORMED, f"Content-Type must be {MEDIA_TYPE_JOSE_JSON}")
    if refusal is not None:
        metrics.inbox("unknown", refusal.code.value, receipt=False)
        return protocol_error_response(refusal)
    return await read_body(request, timeout_s=timeout_s, limit=limit)


def inbox_response(result: InboxResult) -> web.Response:
    if result.unavailable_s is not None:
        # Retryable (docs/protocol.md, section 15): nothing was decided about the envelope.
        return web.json_response(error_body("unavailable", "the node cannot store anything now; try again later"),
                                 status=503, headers={"Retry-After": retry_after(result.unavailable_s)})
    if result.error is not None:
        return protocol_error_response(result.error, receipt=result.receipt)
    return web.Response(body=result.receipt, content_type=MEDIA_TYPE_JOSE_JSON)
