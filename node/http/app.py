"""``create_app(config)``: the aiohttp application of one node.

The database, the keys, the HTTP client session and the delivery sweep are opened
and closed in ``app.cleanup_ctx``; one error middleware turns anything unexpected into
a 500 with a stable code, without leaking details.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

from node.base.clock import Clock
from node.base.config import Config
from node.base.errors import HTTP_ERROR_CODES, error_body
from node.base.keystore import KeyStore
from node.base.logs import failure_fields, get_logger
from node.base.ratelimit import FailureLimiter
from node.base.tokens import hash_token, metrics_token
from node.crm.csv_stage import clear_stages
from node.federation.runtime import Node
from node.http import api, health, metrics_api, openapi
from node.http import inbox as federation
from node.http.appkeys import METRICS_TOKEN_HASH, NODE, TOKEN_GUESSES
from node.http.lazy import add_lazy_routes
from node.http.route_index import ROUTES
from node.portal import vault
from node.storage.db import Database
from node.storage.disk import unavailable_storage

log = get_logger("node.app")


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            code = HTTP_ERROR_CODES.get(exc.status, "http_error")
            # a 405 says which methods the path takes (RFC 9110, 15.5.6)
            kept = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
            return web.json_response(error_body(code, exc.reason), status=exc.status, headers=kept)
        raise
    except Exception as exc:
        if isinstance(exc, ConnectionResetError) and request.transport is None:
            # The client went away before its request was whole (a body cut short): no one
            # to answer, and nothing went wrong here. aiohttp drops this answer unsent.
            return web.Response(status=400)
        if (why := unavailable_storage(exc)) is not None:  # a full disk: nothing was written
            log.warning("request not served: storage unavailable", path=request.path, reason=why)
            return web.json_response(error_body("unavailable", "the node cannot store anything now; try again later"),
                                     status=503, headers={"Retry-After": "30"})
        log.error("unhandled error", path=request.path, **failure_fields(exc))
        return web.json_response(error_body("internal", "the node hit an internal error"), status=500)


def passphrase_from_env(config: Config, env: dict[str, str] | None = None) -> bytes | None:
    value = (env if env is not None else os.environ).get(config.key_passphrase_env)
    return value.encode("utf-8") if value else None


def client_max_size(config: Config) -> int:
    """The largest request body the node reads: an envelope at its limit, with room for
    the admin API's bodies (CSV imports, settings)."""
    return config.max_envelope_bytes + 65536


def create_app(config: Config, *, clock: Clock | None = None, passphrase: bytes | None = None,
               extra_routes: list[api.Route] | None = None) -> web.Application:
    app = web.Application(middlewares=[metrics_api.timing_middleware, error_middleware],
                          client_max_size=client_max_size(config))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        sealing = passphrase if passphrase is not None else passphrase_from_env(config)
        keys = KeyStore.load(config.keys_dir, sealing)
        vault.unlock(config.keys_dir, sealing)  # the client portal's data key, sealed alike
        db = Database(config.database_path, shared=config.inbox_workers > 0)
        clear_stages(config.data_dir)  # of CSV imports cut short when the node last stopped
        node = Node(config, keys, db, clock=clock)
        node.http = aiohttp.ClientSession(headers={"User-Agent": "refnode/0.1"})
        app[NODE] = node
        app[METRICS_TOKEN_HASH] = hash_token(metrics_token(config.data_dir))
        app[TOKEN_GUESSES] = FailureLimiter("admin-api tokens", limit=config.auth_failures_per_min, window_s=60.0,
                                            clock=node.clock, unlogged=frozenset({"prefix"}))
        await node.start()
        log.info("node started", node_id=node.me, url=node.base_url)
        try:
            yield
        finally:
            await node.stop()
            await node.http.close()
            await db.close()
            log.info("node stopped")

    app.cleanup_ctx.append(lifecycle)
    app.add_routes(federation.routes)
    app.add_routes(health.routes)
    app.add_routes(metrics_api.routes)
    add_lazy_routes(app, ROUTES, api.route_in)  # each module with its first request
    api.add_routes(app, extra_routes or [])

    def admin_routes() -> list[api.Route]:
        from node.http.routes import ALL

        return ALL + (extra_routes or [])

    openapi.add_openapi_route(app, admin_routes)
    return app
