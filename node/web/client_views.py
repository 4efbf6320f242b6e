"""How client portal pages (``/client/``) are served: as ``node.web.views`` serves the
console, but with the client's own session, never a staff one.

- **the session**: the ``rn_client`` cookie (HttpOnly, SameSite=Strict, path ``/client/``,
  so the console never sees it, nor this code the console's) names a client session
  (``node.portal.access``); without a live one a GET goes to ``/client/sign-in`` and
  anything else is refused. A revoked access ends its sessions, so the very next request
  of that client is refused;
- **CSRF**: every POST carries ``csrf`` (in the query string for an upload), derived from
  the session, or before sign-in from the ``rn_cpre`` cookie;
- **errors**: as the console's, on the portal's own error page.

A staff session is no way in, and a client session opens no console page and no API:
those check their own credentials.
"""

from __future__ import annotations

import hmac
import os
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from aiohttp import web

from node.base.errors import ApiError
from node.crm.errors import CrmError
from node.http.appkeys import NODE
from node.portal.access import Client, session_client
from node.web.views import CRM_STATUS, FormError, View, csrf_token, read_form
from protocol.encoding import b64u_encode

CLIENT_COOKIE = "rn_client"
PRE_COOKIE = "rn_cpre"
COOKIE_PATH = "/client/"


@dataclass
class ClientView(View):
    """One client page request."""

    client: Client | None = None

    @property
    def me(self) -> Client:
        assert self.client is not None
        return self.client

    def set_client_cookie(self, response: web.StreamResponse, name: str, value: str | None) -> None:
        if value is None:
            response.del_cookie(name, path=COOKIE_PATH)
        else:
            response.set_cookie(name, value, path=COOKIE_PATH, httponly=True, samesite="Strict",
                                secure=self.config.secure_cookies)


ClientHandler = Callable[[ClientView], Awaitable[web.StreamResponse | dict[str, Any]]]


@dataclass(frozen=True)
class ClientRoute:
    method: str
    path: str
    handler: ClientHandler
    template: str | None
    signed_in: bool
    multiline: frozenset[str]
    raw_body: bool


class ClientPages:
    def __init__(self) -> None:
        self.routes: list[ClientRoute] = []

    def _add(self, method: str, path: str, template: str | None, *, signed_in: bool = True,
             multiline: tuple[str, ...] = (), raw_body: bool = False) -> Callable[[ClientHandler], ClientHandler]:
        def register(handler: ClientHandler) -> ClientHandler:
            self.routes.append(ClientRoute(method, path, handler, template, signed_in, frozenset(multiline), raw_body))
            return handler

        return register

    def get(self, path: str, template: str | None = None, **options: Any) -> Callable[[ClientHandler], ClientHandler]:
        return self._add("GET", path, template, **options)

    def post(self, path: str, template: str | None = None, **options: Any) -> Callable[[ClientHandler], ClientHandler]:
        return self._add("POST", path, template, **options)


def _error(view: ClientView, status: int, code: str, message: str) -> web.Response:
    return view.render("client/error.html", {"status": status, "code": code, "message": message}, status=status)


def _serve(route: ClientRoute) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        node = request.app[NODE]
        view = ClientView(request, node, None, "")
        sid = request.cookies.get(CLIENT_COOKIE)
        if sid:
            now = node.clock.now()
            config = node.config
            view.client = await node.db.write(lambda conn: session_client(
                conn, sid, now, idle_s=config.session_idle_s, absolute_s=config.session_absolute_s))
        new_pre = None
        seed = sid if view.client is not None else request.cookies.get(PRE_COOKIE)
        if not seed or len(seed) > 100:
            seed = new_pre = b64u_encode(os.urandom(24))
        view.csrf = csrf_token(seed)
        response = await _answer(route, view, sid)
        if new_pre is not None:
            view.set_client_cookie(response, PRE_COOKIE, new_pre)
        return response

    return handle


async def _answer(route: ClientRoute, view: ClientView, sid: str | None) -> web.StreamResponse:
    request = view.request
    if route.signed_in and view.client is None:
        if request.method == "GET":
            response = view.redirect("/client/sign-in?" + urllib.parse.urlencode({"next": request.path_qs}))
        else:
            response = _error(view, 401, "unauthenticated", "Your session has ended. Sign in again.")
        if sid:
            view.set_client_cookie(response, CLIENT_COOKIE, None)
        return response
    try:
        if request.method == "POST":
            if not route.raw_body:
                view.form = await read_form(request, view.node, route.multiline)
            sent = request.query.get("csrf", "") if route.raw_body else view.form.get("csrf", "")
            if not hmac.compare_digest(sent.encode(), view.csrf.encode()):
                return _error(view, 403, "csrf_failed", "This form has expired. Go back, reload the page and "
                                                        "send it again.")
        result = await route.handler(view)
    except FormError as exc:
        return _error(view, 400, "invalid", str(exc))
    except CrmError as exc:
        return _error(view, CRM_STATUS.get(exc.code, 400), exc.code, exc.message)
    except ApiError as exc:
        return _error(view, exc.status, exc.code, exc.message)
    if isinstance(result, web.StreamResponse):
        return result
    assert route.template is not None, f"{route.path} returned data but names no template"
    return view.render(route.template, result)


def client_page_in(module: ModuleType, method: str, path: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The handler of a page of ``module``'s ``pages`` (for :func:`node.http.lazy.add_lazy_routes`)."""
    table: ClientPages = module.pages
    return _serve(next(r for r in table.routes if r.method == method and r.path == path))


def add_client_pages(app: web.Application, table: ClientPages) -> None:
    for route in table.routes:
        app.router.add_route(route.method, route.path, _serve(route))
