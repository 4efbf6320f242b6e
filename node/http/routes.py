"""Every admin-API route of the node, gathered from the modules that define them. The
OpenAPI document is built from this list. Importing this module imports them all: a
serving node adds the routes from ``node.http.route_index`` instead, and imports a
module with the first request to one of its routes (:mod:`node.http.lazy`)."""

from __future__ import annotations

import importlib

from node.http.api import Route

#: The modules of :mod:`node.http` with a ``ROUTES`` list, in the order they are added.
ROUTE_MODULES = ("federation_api", "connections_api", "users_api", "referral_api", "opportunities",
                 "reporting", "workflows_api", "deals_api", "notes_api", "contacts_api", "csv_api")


def _routes(name: str) -> list[Route]:
    routes: list[Route] = importlib.import_module(f"node.http.{name}").ROUTES
    return routes


ALL: list[Route] = [route for name in ROUTE_MODULES for route in _routes(name)]


def route_index() -> str:
    """The text of ``node/http/route_index.py``."""
    from node.http.lazy import index_module

    rows = [(f"node.http.{name}", r.method, r.path) for name in ROUTE_MODULES for r in _routes(name)]
    return index_module("Every admin-API route: its module, method and path (see :mod:`node.http.lazy`).",
                        {"ROUTES": rows})
