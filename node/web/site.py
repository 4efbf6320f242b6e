"""The node's web pages, on the same application (and port) as its federation and admin
API: ``create_site`` is ``node.http.app.create_app`` with the console added.

- templates: Jinja2, autoescaped, one per page on ``base.html``, loaded with the first page
  (:mod:`node.web.templating`);
- ``/static/``: our CSS and the few scripts, no build step and no CDN;
- every page is sent with a strict Content-Security-Policy (no inline script or style),
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``, and
  ``Cache-Control: no-store`` (pages show personal data);
- a path that is neither a page nor the API answers a browser with an HTML 404.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from node.base.config import Config
from node.base.when import when
from node.http.app import create_app
from node.http.lazy import add_lazy_routes, index_module
from node.web import page_state, templating
from node.web.client_views import client_page_in
from node.web.page_index import CLIENT_PAGES, PAGES
from node.web.views import page_in

HERE = Path(__file__).parent

#: Every page module of :mod:`node.web`, in the order their routes are added. A serving
#: node adds them from ``node.web.page_index`` and imports a module with the first
#: request to one of its pages (:mod:`node.http.lazy`).
PAGE_MODULES = (
    "auth_pages", "home", "settings_pages", "csv_pages", "documents_pages", "deal_forms", "deals_pages",
    "contacts_pages", "connecting_pages", "connections_pages", "refer_pages", "referrals_pages",
    "opportunities_pages", "reports_pages", "admin_pages", "admin_tokens", "admin_outbox", "admin_mail",
    # the partner portal (issue 13)
    "deal_partners", "partner_admin", "partner_account", "partner_pages", "enterprise_pages",
    "portal_settings_pages", "portal_pages",
)
#: The client portal's page modules (issue 14), added after those.
CLIENT_PAGE_MODULES = ("client_pages", "client_factfind")


def page_tables(names: tuple[str, ...] = PAGE_MODULES) -> list[Any]:
    """The ``pages`` of the modules ``names`` (importing them all)."""
    return [importlib.import_module(f"node.web.{name}").pages for name in names]


def page_index() -> str:
    """The text of ``node/web/page_index.py``."""
    def rows(names: tuple[str, ...]) -> list[tuple[str, str, str]]:
        return [(f"node.web.{name}", r.method, r.path) for name, table in zip(names, page_tables(names), strict=True)
                for r in table.routes]

    return index_module("Every page of the console and the portals: its module, method and path (see "
                        ":mod:`node.http.lazy`).", {"PAGES": rows(PAGE_MODULES), "CLIENT_PAGES": rows(CLIENT_PAGE_MODULES)})


CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
_NOT_PAGES = ("/api/", "/inbox", "/.well-known/")
#: The client portal may embed its broker's videos, through the providers' privacy-enhanced
#: players only (node.portal.settings.FRAME_SOURCES).
CLIENT_CSP = CSP + "; frame-src https://www.youtube-nocookie.com https://player.vimeo.com"


def _is_page(path: str) -> bool:
    return not path.startswith(_NOT_PAGES)


@web.middleware
async def page_middleware(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    if not _is_page(request.path):
        return await handler(request)
    try:
        response = await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        if "text/html" not in request.headers.get("Accept", ""):
            raise
        response = templating.render(
            "error.html", request,
            {"view": None, "status": exc.status, "code": "not_found" if exc.status == 404 else "method_not_allowed",
             "message": "There is no page here." if exc.status == 404 else "This page does not take that."},
            status=exc.status)
    if request.path.startswith("/client/"):
        response.headers.setdefault("Content-Security-Policy", CLIENT_CSP)
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def install(app: web.Application, config: Config) -> None:
    app[templating.TEMPLATES] = templating.Templates(
        config.org_name, lambda value, style="datetime": when(value, config.zone, style))
    app.middlewares.append(page_middleware)
    app.cleanup_ctx.append(page_state.guess_limiter)
    app.cleanup_ctx.append(page_state.imports)
    app.cleanup_ctx.append(page_state.parts_cleared)
    app.router.add_static("/static/", HERE / "static", name="static", append_version=True)
    add_lazy_routes(app, PAGES, page_in)  # each module with its first request
    add_lazy_routes(app, CLIENT_PAGES, client_page_in)


def create_site(config: Config, **kwargs: Any) -> web.Application:
    """The node's application with its console: what ``refnode serve`` runs."""
    app = create_app(config, **kwargs)
    install(app, config)
    return app
