"""The admin API's plumbing: JSON over HTTP under /api/v1 with bearer-token authentication
(tokens are stored hashed, see :mod:`node.base.tokens`).

Every route is declared once as a ``Route`` with its input model, in the ``ROUTES`` of the
module that serves it (gathered in :mod:`node.http.routes`). This module is the one place
every route is parsed, authenticated and answered: ``add_routes`` mounts each ``Route``
behind ``_wrap``, which checks the token and the caller's role, parses the JSON body into
the route's model, calls the handler and turns its result or error into the answer.
Handlers read their query string through ``query_params`` or ``query_model``. Errors from
the CRM's store (``CrmError``) become 404 (an id this node does not hold), 400 (input that
breaks a rule) or 409 (a clash with what is stored), naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from node.base.errors import HTTP_STATUS, ApiError, api_error_response
from node.base.ratelimit import retry_after
from node.base.tokens import hash_token, token_prefix
from node.crm.errors import CrmError
from node.crm.parsing import field_errors
from node.federation.runtime import Node
from node.http.appkeys import NODE, TOKEN_GUESSES
from node.http.clients import client_address
from node.storage import store
from protocol.errors import ProtocolError
from protocol.messages import Person

#: CRM error codes as HTTP statuses.
CRM_STATUS = {"not_found": 404, "invalid": 400, "conflict": 409, "too_large": 413}


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Empty(In):
    pass


@dataclass(frozen=True)
class Caller:
    id: str
    email: str
    name: str
    role: str

    @property
    def person(self) -> Person:
        return Person(name=self.name, email=self.email)


Handler = Callable[[web.Request, Node, Caller, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    admin_only: bool = False
    status: int = 200


def _parse(model: type[BaseModel], raw: bytes) -> BaseModel:
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise ApiError(400, "malformed", "the body is not JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise ApiError(400, "invalid", f"{where}: {first['msg'].removeprefix('Value error, ')}", field=where,
                       errors=[{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                               for e in exc.errors()[:20]]) from None


def query_params(request: web.Request, *names: str) -> dict[str, str]:
    """The query string, or a 400 naming a parameter that is unknown or given twice (a
    misspelt filter must not quietly return everything)."""
    for name in request.query:
        if name not in names:
            takes = f"use {', '.join(names)}" if names else "this route takes none"
            raise ApiError(400, "invalid", f"unknown query parameter {name!r}; {takes}", field=name)
        if len(request.query.getall(name)) > 1:
            raise ApiError(400, "invalid", f"query parameter {name} is given more than once; give it once",
                           field=name)
    return dict(request.query)


Q = TypeVar("Q", bound=BaseModel)


def query_model(request: web.Request, model: type[Q]) -> Q:
    """The query string as ``model``, or a 400 naming the parameter to fix."""
    for name in request.query:
        if len(request.query.getall(name)) > 1:
            raise ApiError(
                400,
                "invalid",
                f"query parameter {name} is given more than once; give it once",
                field=name,
            )
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "(query)"
        if first["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields)
            takes = f"this route takes: {known}" if known else "this route takes none"
            message = f"unknown query parameter {name!r}; {takes}"
        else:
            message = f"query parameter {name}: {field_errors(exc)[0][1]}"
        raise ApiError(
            400,
            "invalid",
            message,
            field=name,
            errors=[{"field": f, "message": m} for f, m in field_errors(exc)],
        ) from None


async def _authenticate(request: web.Request, node: Node) -> Caller:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise ApiError(401, "unauthenticated", "send 'Authorization: Bearer <token>'")
    token = header[7:].strip()
    guesses, guesser = request.app[TOKEN_GUESSES], {"client": client_address(request), "prefix": token_prefix(token)}
    if wait_s := guesses.charge(**guesser):  # before the look-up, so that nothing is learnt
        raise ApiError(429, "rate_limited", f"too many wrong tokens; try again in {retry_after(wait_s)} s",
                       retry_after_s=wait_s)
    token_hash = hash_token(token)
    user = await node.db.read(lambda conn: store.token_user(conn, token_hash))
    if user is None:
        raise ApiError(401, "unauthenticated", "that token is unknown or revoked")
    guesses.refund(**guesser)
    return Caller(**user)


def _wrap(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        node = request.app[NODE]
        try:
            caller = await _authenticate(request, node)
            if route.admin_only and caller.role != "admin":
                raise ApiError(403, "forbidden", "this needs an admin")
            body = _parse(route.body, await request.read()) if route.body is not None else None
            result = await route.handler(request, node, caller, body)
        except ApiError as exc:
            return api_error_response(exc)
        except ProtocolError as exc:
            return api_error_response(ApiError(HTTP_STATUS.get(exc.code, 400), exc.code.value, exc.message))
        except CrmError as exc:
            status = CRM_STATUS.get(exc.code, 400)
            return api_error_response(ApiError(status, exc.code, exc.message, field=exc.field))
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response(result, status=route.status, dumps=lambda v: json.dumps(v, default=str))

    return handle


def add_routes(app: web.Application, routes: list[Route]) -> None:
    for route in routes:
        app.router.add_route(route.method, route.path, _wrap(route))
