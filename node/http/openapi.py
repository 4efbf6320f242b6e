"""The admin API's OpenAPI document, built from the list of ``Route``s and the very models
that validate their requests (so the two cannot drift), served at /api/v1/openapi.json.

Exact, not merely indicative: a request the document allows is one the server parses
(it may still break a rule no schema can say, such as an id this node does not hold), and
a request it forbids is refused with a 4xx. So it states what ``node.http.api`` applies
to every route as well as each route's models: path parameters and query strings with
their types and ranges, a required JSON body sent as application/json, text patterns
without control characters (one line in queries and wherever a field says so), integers
within SQLite's range, and every status the server answers with (error bodies included).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter
from pydantic.json_schema import models_json_schema

from node.base.inputs import INT64_MAX, INT64_MIN, LINE_PATTERN, TEXT_PATTERN
from node.http.api import Route

REF = "#/components/schemas/{model}"

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable: what went wrong"},
                "message": {"type": "string", "description": "What to fix, in words"},
                "field": {"type": "string", "description": "The field, parameter or column at fault"},
                "detail": {"type": "object"},
            },
        },
        "receipt": {"type": "string"},
    },
}

_ERRORS = {
    400: "Invalid input: error.code, error.message, error.field",
    401: "Missing or unknown token",
    403: "Not allowed for this user",
    404: "Unknown id",
    409: "Not allowed in the current state",
    413: "The body is too large",
    415: "The body is not of the media type the route takes",
    429: "Too many requests: wait Retry-After seconds",
}


def _bounded(schema: Any, *, text: str) -> Any:
    """``schema`` with the rules every input meets written in: integers within SQLite's
    range, and ``text`` as the pattern of any string without a stricter form of its own."""
    if isinstance(schema, list):
        return [_bounded(s, text=text) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (v if k in ("default", "examples", "const", "enum") else _bounded(v, text=text))
           for k, v in schema.items()}
    kind = out.get("type")
    if kind == "object" and len(out.get("patternProperties", {})) == 1:
        # a map whose keys are checked: say so of every key, not only of matching ones
        (pattern, values), = out.pop("patternProperties").items()
        out["propertyNames"] = {"pattern": pattern}
        out["additionalProperties"] = values
    if kind == "object" and isinstance(out.get("additionalProperties"), dict):
        out.setdefault("propertyNames", {"pattern": LINE_PATTERN})  # member names are one line
    if kind == "integer":
        out["minimum"] = max(out.get("minimum", INT64_MIN), INT64_MIN)
        out["maximum"] = min(out.get("maximum", INT64_MAX), INT64_MAX)
    elif kind == "string" and not ({"pattern", "enum", "const", "format"} & out.keys()):
        out["pattern"] = text
    return out


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is given or not; it is never null."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return {**rest, **options[0]}
    return schema


def _parameters(route: Route) -> list[dict[str, Any]]:
    params = [
        {"name": name, "in": "path", "required": True,
         "schema": _bounded(TypeAdapter(kind).json_schema(), text=LINE_PATTERN)}
        for name, kind in route.param_types().items()
    ]
    query = route.query.model_json_schema()
    for name, schema in query.get("properties", {}).items():
        schema = _not_null({k: v for k, v in schema.items() if k not in ("title", "default")})
        params.append({"name": name, "in": "query", "required": name in query.get("required", []),
                       "schema": _bounded(schema, text=LINE_PATTERN)})
    return params


def _responses(route: Route) -> dict[str, Any]:
    content = ({"text/csv": {"schema": {"type": "string"}}} if route.answers == "text/csv"
               else {"application/json": {"schema": {"type": "object"}}})
    responses: dict[str, Any] = {str(s): {"description": "OK", "content": content}
                                 for s in (route.status, *route.also)}
    takes_body = route.body is not None or route.csv_body
    for status, description in _ERRORS.items():
        if status == 404 and not (route.param_types() or takes_body or route.query.model_fields):
            continue
        if status == 409 and route.method == "GET":
            continue
        if status in (413, 415) and not takes_body:
            continue
        answer: dict[str, Any] = {"description": description,
                                  "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}}
        if status == 429:
            answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "required": False}}
        responses[str(status)] = answer
    return responses


def openapi(routes: list[Route]) -> dict[str, Any]:
    bodies = sorted({r.body for r in routes if r.body is not None}, key=lambda m: (m.__module__, m.__name__))
    names, defs = models_json_schema([(m, "validation") for m in bodies], ref_template=REF)
    schemas: dict[str, Any] = {name: _bounded(s, text=TEXT_PATTERN) for name, s in defs.get("$defs", {}).items()}
    schemas["Error"] = ERROR
    paths: dict[str, Any] = {}
    for route in routes:
        op: dict[str, Any] = {
            "summary": route.summary,
            "operationId": f"{route.method.lower()}{route.path.removeprefix('/api/v1').replace('/', '_').replace('{', '').replace('}', '')}",
            "security": [{"bearer": []}],
            "parameters": _parameters(route),
            "responses": _responses(route),
        }
        if route.body is not None:
            ref = names[(route.body, "validation")]
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
        elif route.csv_body:
            op["requestBody"] = {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "referral-node admin API", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def add_openapi_route(app: web.Application, routes: Callable[[], list[Route]]) -> None:
    """Serve the document of the ``routes()`` at /api/v1/openapi.json. It is built on the
    first request, not at start: the JSON schemas of every model cost 1.5 MiB of resident
    memory that an idle node would hold for nothing (and the routes' modules are loaded
    with their first request, :mod:`node.http.lazy`)."""
    document: dict[str, Any] = {}

    async def serve_openapi(request: web.Request) -> web.Response:
        if not document:
            document.update(openapi(routes()))
        return web.json_response(document)

    app.router.add_get("/api/v1/openapi.json", serve_openapi)
