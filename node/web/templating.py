"""The pages' templates: Jinja2, autoescaped, one per page on ``base.html``, loaded when
the first page is rendered.

A node serves its inbox and API from the same process as its console, and most of the
time nobody looks at the console: Jinja2 (1.9 MiB of resident memory once loaded) waits
for the first page (``bench/idle_memory.py``). Every template sees what the page gives it,
plus ``path`` (the request's), ``static(name)`` (a static file's versioned URL), ``node``
(the running node), ``org_name`` and the ``when`` filter (a time in the organisation's
zone).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from node.federation.sharing import type_words
from node.http.appkeys import NODE

if TYPE_CHECKING:
    import jinja2

HERE = Path(__file__).parent


class Templates:
    """The environment of one application's pages, made on first use."""

    def __init__(self, org_name: str, when: Callable[..., str]) -> None:
        self._org_name, self._when = org_name, when
        self._env: jinja2.Environment | None = None

    @property
    def env(self) -> jinja2.Environment:
        if self._env is None:
            import jinja2

            env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(HERE / "templates"),
                autoescape=jinja2.select_autoescape(default=True),
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                auto_reload=False,  # templates ship with the code: no stat() of each file at each use
            )
            env.filters["when"] = self._when
            env.filters["words"] = type_words
            env.globals["org_name"] = self._org_name
            self._env = env
        return self._env

    def render(self, name: str, request: web.Request, context: dict[str, Any], *, status: int = 200) -> web.Response:
        """The page ``name`` rendered with ``context`` (and what every page sees), as HTML."""
        values = {
            "path": request.path,
            "static": lambda file: request.app.router["static"].url_for(filename=file),
            "node": request.app[NODE] if NODE in request.app else None,
            **context,
        }
        return web.Response(text=self.env.get_template(name).render(values), status=status,
                            content_type="text/html", charset="utf-8")


TEMPLATES = web.AppKey("templates", Templates)


def render(name: str, request: web.Request, context: dict[str, Any], *, status: int = 200) -> web.Response:
    """Render a page of the application serving ``request``."""
    return request.config_dict[TEMPLATES].render(name, request, context, status=status)
