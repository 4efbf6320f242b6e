"""The one place every page is served through, as ``node.http.api`` is for the API.

A page module declares its routes on a :class:`Pages` table::

    pages = Pages()

    @pages.get("/connections", "connections.html")
    async def connections(view: View) -> dict[str, Any]:
        return {"connections": ...}            # rendered with the template

    @pages.post("/connections/{id}/disconnect", admin_only=True)
    async def disconnect(view: View) -> web.StreamResponse:
        ...
        return view.redirect("/connections", "Disconnected.")   # Post/Redirect/Get

``_serve`` wraps each handler:

- **the session**: a page that needs a signed-in user (all but sign-in and password
  links) reads the ``rn_session`` cookie (``node.crm.accounts``); without a live session
  a GET goes to ``/login?next=...`` and anything else is refused;
- **permissions**: ``admin_only`` and ``portal`` (the console, or the partner portal
  under ``/partner/``) are checked by :func:`node.crm.access.authorize`, the same check
  the API makes: a partner on a console page, or anyone else on a portal page, gets 404;
- **CSRF**: every POST carries the form field ``csrf``; it must match the token derived
  from the session (or, before sign-in, from the ``rn_pre`` cookie). A POST without it is
  refused (403, ``csrf_failed``) before the handler runs;
- **the form**: ``application/x-www-form-urlencoded`` bodies are read with the API's
  limits and timeout (``node.http.bodies``), one line of text per field unless the field
  is a textarea (``multiline``); multipart bodies (uploads) are left to the handler;
- **errors**: the CRM's and the protocol's errors, and ``AccessDenied``, become an error
  page with the stable code and the status the API gives it, never a 500 with details.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from aiohttp import web
from multidict import MultiDict

from node.base.config import Config
from node.base.errors import HTTP_STATUS, ApiError
from node.base.inputs import text_problem
from node.crm import accounts
from node.crm.access import AccessDenied, Caller, Portal, authorize
from node.crm.errors import CrmError
from node.federation.runtime import Node
from node.http.appkeys import NODE
from node.http.bodies import read_body
from node.web import templating
from protocol.encoding import b64u_encode
from protocol.errors import ProtocolError

SESSION_COOKIE = "rn_session"
PRE_COOKIE = "rn_pre"
FLASH_COOKIE = "rn_flash"
#: Largest form body (uploads excepted).
MAX_FORM_BYTES = 256 * 1024
MAX_FORM_FIELDS = 2000

#: The CRM's error codes as HTTP statuses (as the API has them).
CRM_STATUS = {"not_found": 404, "invalid": 400, "conflict": 409, "too_large": 413}


class FormError(Exception):
    """The form as sent cannot be read (HTTP 400, ``invalid``)."""


def csrf_token(seed: str) -> str:
    """The CSRF token of a session (or of a pre-sign-in cookie): derived, never stored."""
    return b64u_encode(hmac.new(seed.encode("utf-8"), b"refnode csrf v1", hashlib.sha256).digest())


@dataclass
class View:
    """One page request: who asks, their form, and how to answer."""

    request: web.Request
    node: Node
    caller: Caller | None
    csrf: str
    form: MultiDict[str] = field(default_factory=MultiDict)
    set_cookies: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def user(self) -> Caller:
        """The signed-in user (pages that need one always have one)."""
        assert self.caller is not None
        return self.caller

    @property
    def config(self) -> Config:
        return self.node.config

    def value(self, name: str, default: str = "") -> str:
        return self.form.get(name, default).strip()

    def values(self, name: str) -> list[str]:
        return [v.strip() for v in self.form.getall(name, [])]

    def render(self, template: str, context: dict[str, Any], *, status: int = 200) -> web.Response:
        response = templating.render(template, self.request, {"view": self, **context}, status=status)
        self._cookies(response)
        return response

    def redirect(self, location: str, flash: str | None = None) -> web.Response:
        """Post/Redirect/Get, with a one-time message for the next page."""
        response = web.Response(status=303, headers={"Location": safe_next(location)})
        if flash:
            response.set_cookie(FLASH_COOKIE, urllib.parse.quote(flash[:300]), path="/", httponly=True,
                                samesite="Lax", secure=self.config.secure_cookies, max_age=60)
        self._cookies(response)
        return response

    def flash(self) -> str | None:
        raw = self.request.cookies.get(FLASH_COOKIE)
        if not raw:
            return None
        self.set_cookies.append((FLASH_COOKIE, "", {"max_age": 0}))
        return urllib.parse.unquote(raw)[:300]

    def _cookies(self, response: web.StreamResponse) -> None:
        for name, value, options in self.set_cookies:
            if options.get("max_age") == 0:
                response.del_cookie(name, path="/")
            else:
                response.set_cookie(name, value, path="/", httponly=True, samesite="Lax",
                                    secure=self.config.secure_cookies, **options)


def safe_next(location: str) -> str:
    """Only paths on this site: never an open redirect."""
    if not location.startswith("/") or location.startswith("//") or "\\" in location:
        return "/"
    return location


PageHandler = Callable[[View], Awaitable[web.StreamResponse | dict[str, Any]]]


@dataclass(frozen=True)
class PageRoute:
    method: str
    path: str
    handler: PageHandler
    template: str | None
    admin_only: bool
    signed_in: bool
    #: Fields that may hold several lines (textareas).
    multiline: frozenset[str]
    #: The handler reads the body itself (a multipart upload); CSRF is still checked, from
    #: the query string's ``csrf``.
    raw_body: bool
    #: The console's page, or the partner portal's (``node.crm.access.authorize``).
    portal: Portal = "console"


class Pages:
    """The routes of one page module."""

    def __init__(self) -> None:
        self.routes: list[PageRoute] = []

    def _add(self, method: str, path: str, template: str | None, *, admin_only: bool = False,
             signed_in: bool = True, multiline: tuple[str, ...] = (),
             raw_body: bool = False, portal: Portal = "console") -> Callable[[PageHandler], PageHandler]:
        def register(handler: PageHandler) -> PageHandler:
            self.routes.append(PageRoute(method, path, handler, template, admin_only, signed_in,
                                         frozenset(multiline), raw_body, portal))
            return handler

        return register

    def get(self, path: str, template: str | None = None, **options: Any) -> Callable[[PageHandler], PageHandler]:
        return self._add("GET", path, template, **options)

    def post(self, path: str, template: str | None = None, **options: Any) -> Callable[[PageHandler], PageHandler]:
        return self._add("POST", path, template, **options)


async def _session(request: web.Request, node: Node) -> tuple[Caller | None, str | None]:
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        return None, None
    now = node.clock.now()
    config = node.config
    found = await node.db.read(lambda conn: accounts.session_caller(
        conn, sid, now, idle_s=config.session_idle_s, absolute_s=config.session_absolute_s))
    if found is None:
        return None, None
    if found.stale:
        await node.db.write(lambda conn: accounts.touch_session(conn, sid, now))
    return found.caller, sid


async def read_form(request: web.Request, node: Node, multiline: frozenset[str]) -> MultiDict[str]:
    if request.content_type != "application/x-www-form-urlencoded":
        raise FormError("send the form as application/x-www-form-urlencoded")
    raw = await read_body(request, timeout_s=node.config.body_timeout_s, limit=MAX_FORM_BYTES)
    try:
        pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                                       max_num_fields=MAX_FORM_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise FormError("the form is not valid UTF-8 form data") from None
    form: MultiDict[str] = MultiDict()
    for name, value in pairs:
        value = value.replace("\r\n", "\n")
        problem = text_problem(name) or (text_problem(value.replace("\n", " ").replace("\t", " "))
                                         if name in multiline else text_problem(value))
        if problem is not None:
            raise FormError(f"field {name[:40]!r} {problem}")
        form.add(name, value)
    return form


def _error(view: View, status: int, code: str, message: str) -> web.Response:
    return view.render("error.html", {"status": status, "code": code, "message": message}, status=status)


def _serve(route: PageRoute) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        node = request.app[NODE]
        caller, sid = await _session(request, node)
        view = View(request, node, caller, "")
        seed = sid
        if seed is None:
            seed = request.cookies.get(PRE_COOKIE)
            if not seed or len(seed) > 100:
                seed = b64u_encode(os.urandom(24))
                view.set_cookies.append((PRE_COOKIE, seed, {}))
        view.csrf = csrf_token(seed)
        if route.signed_in and caller is None:
            if request.method == "GET":
                target = request.path_qs
                login = "/partner/login?" if route.portal == "partner" else "/login?"
                return view.redirect(login + urllib.parse.urlencode({"next": target}))
            return _error(view, 401, "unauthenticated", "Your session has ended. Sign in again.")
        try:
            if caller is not None and caller.is_partner and route.portal == "console" and request.path == "/":
                return view.redirect("/partner/")  # a partner's home is the portal
            if caller is not None and route.signed_in:  # pages for everyone (sign-in) are anyone's
                authorize(caller, admin_only=route.admin_only, portal=route.portal)
            if request.method == "POST":
                if not route.raw_body:
                    view.form = await read_form(request, node, route.multiline)
                sent = (request.query.get("csrf", "") if route.raw_body else view.form.get("csrf", ""))
                if not hmac.compare_digest(sent.encode(), view.csrf.encode()):
                    return _error(view, 403, "csrf_failed",
                                  "This form has expired or did not come from this site. Go back, reload "
                                  "the page and send it again.")
            result = await route.handler(view)
        except AccessDenied:
            return _error(view, 403, "forbidden", "This page is for admins only.")
        except FormError as exc:
            return _error(view, 400, "invalid", str(exc))
        except CrmError as exc:
            return _error(view, CRM_STATUS.get(exc.code, 400), exc.code, exc.message)
        except ApiError as exc:
            return _error(view, exc.status, exc.code, exc.message)
        except ProtocolError as exc:
            return _error(view, HTTP_STATUS.get(exc.code, 400), exc.code.value, exc.message)
        if isinstance(result, web.StreamResponse):
            view._cookies(result)
            return result
        assert route.template is not None, f"{route.path} returned data but names no template"
        return view.render(route.template, result)

    return handle


def page_in(module: ModuleType, method: str, path: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The handler of a page of ``module``'s ``pages`` (for :func:`node.http.lazy.add_lazy_routes`)."""
    table: Pages = module.pages
    return _serve(next(r for r in table.routes if r.method == method and r.path == path))


def add_pages(app: web.Application, tables: list[Pages]) -> None:
    for table in tables:
        for route in table.routes:
            app.router.add_route(route.method, route.path, _serve(route))
