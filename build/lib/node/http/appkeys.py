"""Typed application keys (aiohttp ``web.AppKey``) for what the app holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from node.base.ratelimit import FailureLimiter
    from node.federation.runtime import Node

NODE: web.AppKey[Node] = web.AppKey("node")
#: Wrong admin-API tokens, by client address and token prefix.
TOKEN_GUESSES: web.AppKey[FailureLimiter] = web.AppKey("token_guesses")
#: The SHA-256 (hex) of the token that opens ``/metrics`` (see ``node.http.metrics_api``).
METRICS_TOKEN_HASH: web.AppKey[str] = web.AppKey("metrics_token_hash")
