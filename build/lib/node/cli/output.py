"""What every ``refnode`` command shares: the :class:`Context` it runs in (arguments,
environment, configuration, API client), the way it prints, as a table, as
``key: value`` lines, or as JSON with ``--json``, and the two hooks (:data:`Group`,
:data:`Command`) through which each command module's ``add_commands`` adds its commands
to the parser that :func:`node.cli.main.build_parser` builds."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from node.base.config import Config, ConfigError, load_config
from node.cli.client import ApiClient, CliError


def choices(model: type[BaseModel], field: str) -> list[str]:
    """The values a ``Literal`` field of an API model allows, so help never drifts."""
    return list(get_args(model.model_fields[field].annotation))


class Context:
    """What every command gets: the parsed arguments, the environment, the config."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str]) -> None:
        self.args = args
        self.env = env
        self.as_json: bool = bool(getattr(args, "json", False))
        self._config: Config | None = None
        #: Answers a command asks for more than once (the workflows, to resolve names).
        self.cache: dict[str, Any] = {}

    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load_config(self.config_path, self.env)
            except ConfigError as exc:
                raise CliError(str(exc), code="config") from None
        return self._config

    @property
    def config_path(self) -> Path | None:
        value = getattr(self.args, "config", None)
        return Path(value) if value else None

    def client(self) -> ApiClient:
        return ApiClient.for_config(self.config(), self.env)

    def call(self, method: str, path: str, body: Any = None, **query: str | None) -> Any:
        return self.client().call(method, path, body, query)

    def emit(self, data: Any, human: Callable[[], None]) -> None:
        """Print ``data`` as JSON with ``--json``, else the human rendering."""
        if self.as_json:
            print(json.dumps(data, indent=2, default=str))
        else:
            human()


#: ``group(name, help)``: the subcommands of ``refnode NAME``, made on first use; asking
#: again for a name gives the same group.
Group = Callable[[str, str], Any]
#: ``command(where, name, handler, help)``: add a command under ``where`` (a group, or the
#: top-level ``commands``) that runs ``handler``; its parser, for the command's arguments.
Command = Callable[[Any, str, Callable[[Context], int], str], argparse.ArgumentParser]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def print_fields(pairs: Sequence[tuple[str, Any]], indent: str = "  ") -> None:
    width = max(len(k) for k, _ in pairs) + 1
    for key, value in pairs:
        print(f"{indent}{(key + ':').ljust(width)} {'' if value is None else value}")


def flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested objects as ``a.b: value`` pairs for :func:`print_fields`; lists joined by commas."""
    pairs: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            pairs.extend(flatten(value, name + "."))
        elif isinstance(value, list):
            pairs.append((name, ", ".join(str(v) for v in value)))
        else:
            pairs.append((name, value))
    return pairs


def print_notes(notes: list[dict[str, Any]]) -> None:
    """A contact's or a deal's notes, oldest first as the API lists them."""
    print("notes:")
    if not notes:
        print("  (none)")
    for n in notes:
        print(f"  {n['created_at']}  [{n['kind']}] " + n["body"].replace("\n", "\n    "))
