"""The admin API's plumbing: JSON over HTTP under /api/v1 with bearer-token authentication
(tokens are stored hashed, see :mod:`node.base.tokens`).

Every route is declared once as a ``Route`` with its input model, in the ``ROUTES`` of the
module that serves it (gathered in :mod:`node.http.routes`). This module is the one place
every route is parsed, authenticated and answered: ``add_routes`` mounts each ``Route``
behind ``_wrap``, which checks the token and the caller's role, parses the JSON body into
the route's model, calls the handler and turns its result or error into the answer.
Each ``Route`` also declares its query string (``query``, a model) and the types of its
path parameters (``params``; an id unless it says otherwise): ``_wrap`` checks both before
the handler runs, and handlers read them with ``query_model`` and ``path_params``. The
OpenAPI document is generated from the same declarations.

Input rules that hold for every route (``node.base.inputs``): a JSON body is parsed by
``_parse`` alone (strict JSON, strict types: a bool is not an integer), nested at most
``MAX_JSON_DEPTH`` levels, with no control characters in its text and no integer outside
SQLite's range; query values are one line of text; integers in paths and queries are
checked against their range. Errors from the CRM's store (``CrmError``) become 404 (an
id this node does not hold), 400 (input that breaks a rule) or 409 (a clash with what is
stored), naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Annotated, Any, TypeVar

from aiohttp import web
from annotated_types import Ge, Le
from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError

from node.base.errors import HTTP_STATUS, ApiError, api_error_response
from node.base.inputs import INT64_MAX, json_problem, loads_input, text_problem
from node.base.ratelimit import retry_after
from node.base.tokens import hash_token, token_prefix
from node.crm import api_tokens
from node.crm.access import AccessDenied, Caller, authorize
from node.crm.errors import CrmError
from node.crm.fields import Id
from node.crm.parsing import field_errors
from node.federation.runtime import Node
from node.http.appkeys import NODE, TOKEN_GUESSES
from node.http.bodies import read_body
from node.http.clients import client_address
from node.storage import store
from protocol.errors import ProtocolError

#: CRM error codes as HTTP statuses.
CRM_STATUS = {"not_found": 404, "invalid": 400, "conflict": 409, "too_large": 413}


class In(BaseModel):
    # Built on first use (``defer_build``): an idle node holds none it has not needed.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class NoQuery(In):
    """The query string of a route that takes none."""


def whole_number(minimum: int, maximum: int = INT64_MAX) -> Any:
    """A whole number in a path or query string, ``minimum`` to ``maximum`` (never past
    SQLite's range), written in plain digits."""
    maximum = min(maximum, INT64_MAX)

    def digits(value: Any) -> Any:
        if isinstance(value, str) and not re.fullmatch(r"-?[0-9]+", value):
            raise ValueError("must be a whole number written in digits")
        if isinstance(value, str) and len(value.lstrip("-")) > 19:  # past any int64
            raise ValueError(f"must be from {minimum} to {maximum}")
        return value

    return Annotated[int, Ge(minimum), Le(maximum), BeforeValidator(digits)]


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
    #: The query string it takes.
    query: type[BaseModel] = NoQuery
    #: Types of path parameters that are not ids, e.g. ``{"seq": whole_number(1)}``.
    params: dict[str, Any] = field(default_factory=dict)
    #: What the doc says it answers with on success beyond ``status`` and JSON:
    #: ``"text/csv"``, or other statuses (``(201,)``).
    answers: str = "application/json"
    also: tuple[int, ...] = ()
    #: The body is a CSV file (text/csv) that the handler reads itself.
    csv_body: bool = False

    def param_types(self) -> dict[str, Any]:
        names = re.findall(r"{(\w+)}", self.path)
        return {name: self.params.get(name, Id) for name in names}


_PATH_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(kind: Any) -> TypeAdapter[Any]:
    if kind not in _PATH_ADAPTERS:
        _PATH_ADAPTERS[kind] = TypeAdapter(kind)
    return _PATH_ADAPTERS[kind]


def _check_path(route: Route, request: web.Request) -> None:
    values: dict[str, Any] = {}
    for name, kind in route.param_types().items():
        try:
            values[name] = _adapter(kind).validate_python(request.match_info[name])
        except ValidationError as exc:
            message = field_errors(exc)[0][1]
            raise ApiError(400, "invalid", f"{name} in the path: {message}", field=name) from None
    request["path_params"] = values


def path_params(request: web.Request) -> dict[str, Any]:
    """The path's parameters as their route declared them (checked by ``_wrap``)."""
    return dict(request["path_params"])


def _parse(model: type[BaseModel], raw: bytes, content_type: str) -> BaseModel:
    """The body as ``model``: a JSON object sent as application/json (``{}`` for a
    model's defaults), or a 400 (415) naming what to fix."""
    if not raw.strip():
        raise ApiError(400, "malformed", "send a JSON object as the body ({} takes the defaults)",
                       field="(body)")
    if content_type != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       f"send the body as JSON with Content-Type: application/json (not {content_type})")
    try:
        data = loads_input(raw)
    except ValueError as exc:
        raise ApiError(400, "malformed", f"the body {exc}", field="(body)") from None
    if not isinstance(data, dict):
        raise ApiError(400, "malformed", "(body): must be a JSON object", field="(body)")
    problem = json_problem(data)
    if problem is not None:
        where, why = problem
        raise ApiError(400, "invalid", f"{where}: {why}", field=where)
    try:
        # JSON mode and strict: types as JSON Schema has them (no "1" or true for 1); the
        # document as parsed (3600.0 read as 3600), written again
        return model.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise ApiError(400, "invalid", f"{where}: {first['msg'].removeprefix('Value error, ')}", field=where,
                       errors=[{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                               for e in exc.errors()[:20]]) from None


Q = TypeVar("Q", bound=BaseModel)


def query_model(request: web.Request, model: type[Q]) -> Q:
    """The query string as ``model``, or a 400 naming the parameter to fix. Every value
    is one line of text; ``_wrap`` parses the route's ``query`` before the handler runs."""
    cached = request.get("query")
    if type(cached) is model:
        return cached
    for name in request.query:
        name_problem = text_problem(name)
        if name_problem is not None:
            raise ApiError(400, "invalid", f"a query parameter's name {name_problem}", field="(query)")
        if len(request.query.getall(name)) > 1:
            raise ApiError(
                400,
                "invalid",
                f"query parameter {name} is given more than once; give it once",
                field=name,
            )
        problem = text_problem(request.query[name])
        if problem is not None:
            raise ApiError(400, "invalid", f"query parameter {name}: {problem}", field=name)
    try:
        request["query"] = parsed = model.model_validate(dict(request.query))
        return parsed
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "(query)"
        if first["type"] == "extra_forbidden":
            known = ", ".join(f.alias or n for n, f in model.model_fields.items())
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
    token_id, last_used_at, now = user.pop("token_id"), user.pop("last_used_at"), node.clock.now()
    if api_tokens.is_stale(last_used_at, now):
        await node.db.write(lambda conn: api_tokens.touch_token(conn, token_id, now))
    return Caller(**user)


def _wrap(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        node = request.app[NODE]
        try:
            caller = await _authenticate(request, node)
            authorize(caller, admin_only=route.admin_only)
            _check_path(route, request)
            query_model(request, route.query)
            body = None
            if route.body is not None:
                raw = await read_body(request, timeout_s=node.config.body_timeout_s)
                body = _parse(route.body, raw, request.content_type)
            result = await route.handler(request, node, caller, body)
        except ApiError as exc:
            return api_error_response(exc)
        except AccessDenied as exc:
            return api_error_response(ApiError(403, "forbidden", str(exc)))
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


def route_in(module: ModuleType, method: str, path: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The handler of a route of ``module``'s ``ROUTES`` (for :func:`node.http.lazy.add_lazy_routes`)."""
    route = next(r for r in module.ROUTES if r.method == method and r.path == path)
    return _wrap(route)
