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

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from node.base.config import Config
from node.base.when import when
from node.http.app import create_app
from node.web import (
    admin_mail,
    admin_outbox,
    admin_pages,
    admin_tokens,
    auth_pages,
    client_factfind,
    client_pages,
    connecting_pages,
    connections_pages,
    contacts_pages,
    csv_pages,
    deal_forms,
    deal_partners,
    deals_pages,
    documents_pages,
    enterprise_pages,
    home,
    opportunities_pages,
    partner_account,
    partner_admin,
    partner_pages,
    portal_pages,
    portal_settings_pages,
    refer_pages,
    referrals_pages,
    reports_pages,
    settings_pages,
    templating,
)
from node.web.client_views import add_client_pages
from node.web.views import Pages, add_pages

HERE = Path(__file__).parent

#: Every page module, in the order their routes are added.
PAGE_MODULES: list[Pages] = [
    auth_pages.pages,
    home.pages,
    settings_pages.pages,
    csv_pages.pages,
    documents_pages.pages,
    deal_forms.pages,
    deals_pages.pages,
    contacts_pages.pages,
    connecting_pages.pages,
    connections_pages.pages,
    refer_pages.pages,
    referrals_pages.pages,
    opportunities_pages.pages,
    reports_pages.pages,
    admin_pages.pages,
    admin_tokens.pages,
    admin_outbox.pages,
    admin_mail.pages,
    # the partner portal (issue 13)
    deal_partners.pages,
    partner_admin.pages,
    partner_account.pages,
    partner_pages.pages,
    enterprise_pages.pages,
    portal_settings_pages.pages,
    portal_pages.pages,
]

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
    app.cleanup_ctx.append(auth_pages.guess_limiter)
    app.cleanup_ctx.append(csv_pages.imports)
    app.cleanup_ctx.append(documents_pages.parts_cleared)
    app.router.add_static("/static/", HERE / "static", name="static", append_version=True)
    add_pages(app, PAGE_MODULES)
    add_client_pages(app, client_pages.pages)
    add_client_pages(app, client_factfind.pages)


def create_site(config: Config, **kwargs: Any) -> web.Application:
    """The node's application with its console: what ``refnode serve`` runs."""
    app = create_app(config, **kwargs)
    install(app, config)
    return app
