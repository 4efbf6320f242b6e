"""The admin API's OpenAPI document, built from the list of ``Route``s (so the two cannot
drift) and served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.http.api import Route


def openapi(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for route in routes:
        op: dict[str, Any] = {
            "summary": route.summary,
            "security": [{"bearer": []}],
            "responses": {
                str(route.status): {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                "400": {"description": "Invalid input: error.code, error.message, error.field"},
                "401": {"description": "Missing or unknown token"},
                "403": {"description": "Not allowed for this user"},
                "404": {"description": "Unknown id"},
                "409": {"description": "Not allowed in the current state"},
                "429": {"description": "Too many wrong tokens from this address or for this token: "
                                       "error.code rate_limited; come back after Retry-After seconds",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
            },
        }
        params = [p[1:-1] for p in route.path.split("/") if p.startswith("{")]
        if params:
            op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                                for p in params]
        if route.body is not None:
            schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                schemas[name] = sub
            schemas[route.body.__name__] = schema
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}}}}
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "referral-node admin API", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def add_openapi_route(app: web.Application, routes: list[Route]) -> None:
    """Serve the document of ``routes`` at /api/v1/openapi.json."""
    document = openapi(routes)

    async def serve_openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/api/v1/openapi.json", serve_openapi)
