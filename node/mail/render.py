"""A mail from its templates: ``templates/<kind>.txt`` and ``<kind>.html``, each
extending a base, each with a ``subject`` block (the text template's is used).

Autoescaping is on for the HTML part. Templates get the mail's context and ``org`` (our
organisation's name), ``console`` (the console's address) and ``zone`` (its time zone).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.base.config import Config
from node.base.when import when

if TYPE_CHECKING:
    import jinja2


@functools.cache
def _env() -> jinja2.Environment:
    """The templates' environment, made on the first mail rendered: a node that sends
    none does not load Jinja2 for it."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the code: no stat() of each file at each use
    )
    env.filters["when"] = lambda value, zone: when(value, zone, "datetime_zone")
    return env


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def render(kind: str, context: dict[str, Any], config: Config) -> Rendered:
    values = {"org": config.org_name, "console": config.public_url, "zone": config.zone, **context}
    env = _env()
    text_tpl = env.get_template(f"{kind}.txt")
    subject = "".join(text_tpl.blocks["subject"](text_tpl.new_context(values))).strip()
    subject = " ".join(subject.split())[:200]
    return Rendered(subject, text_tpl.render(values).strip() + "\n", env.get_template(f"{kind}.html").render(values))
