"""The HTTP side of the ``refnode`` command: a small client of the admin API.

The CLI never reimplements what the API does; it sends the same requests a script or the
web pages would and shows the answer. An API error becomes a :class:`CliError` carrying
the API's ``error.code``, ``error.message`` and ``error.field``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

from node.base.config import Config
from node.cli.address import admin_url
from node.cli.setup import TOKEN_FILE
from protocol.discovery import verify_discovery
from protocol.errors import ProtocolError
from protocol.keys import fingerprint_of
from protocol.wire import DISCOVERY_PATH

TOKEN_ENV = "REFNODE_TOKEN"  # noqa: S105 (the name of a variable, not a token)


class CliError(Exception):
    """Something the user has to fix. ``code`` and ``field`` come from the API when it
    answered with an error; ``exit_code`` is what the process exits with."""

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None,
                 status: int | None = None, exit_code: int = 1, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.status = status
        self.exit_code = exit_code
        #: The API's ``error.detail``, e.g. ``errors`` (one per problem) of a refused CSV import.
        self.detail = detail or {}

    def describe(self) -> str:
        text = f"{self.code}: {self.message}" if self.code else self.message
        if self.field:
            text += f" (field: {self.field})"
        return text

    def as_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code or "cli_error", "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}


def admin_token(config: Config, env: Mapping[str, str]) -> str:
    """The token from ``REFNODE_TOKEN``, else from ``<data_dir>/admin-token``."""
    token = env.get(TOKEN_ENV, "").strip()
    if token:
        return token
    path = config.data_dir / TOKEN_FILE
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise CliError(f"no admin token: set {TOKEN_ENV}, or point --data-dir at an initialised node "
                       f"({path} does not exist)") from None
    except OSError as exc:
        raise CliError(f"cannot read the admin token from {path}: {exc.strerror}") from None
    if not token:
        raise CliError(f"{path} is empty")
    return token


#: An upload's answer comes once the node has checked and written the whole file.
UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
#: The most of an uploaded file read (and held) at once.
PIECE_BYTES = 64 * 1024


async def _pieces(file: BinaryIO) -> AsyncIterator[bytes]:
    """The file, a piece at a time (read on a thread: standard input may be slow)."""
    while piece := await asyncio.to_thread(file.read, PIECE_BYTES):
        yield piece


class ApiClient:
    """Calls one node's admin API. Use :meth:`call` from synchronous code."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 60.0, data_dir: Path | None = None,
                 token_source: str = TOKEN_ENV) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        #: For messages: whose node we meant to reach, and where the token came from.
        self._data_dir = data_dir
        self._token_source = token_source

    @classmethod
    def for_config(cls, config: Config, env: Mapping[str, str] | None = None) -> ApiClient:
        env = env if env is not None else os.environ
        source = TOKEN_ENV if env.get(TOKEN_ENV, "").strip() else str(config.data_dir.absolute() / TOKEN_FILE)
        return cls(admin_url(config), admin_token(config, env), data_dir=config.data_dir.absolute(),
                   token_source=source)

    async def __aenter__(self) -> ApiClient:
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self._token}", "User-Agent": "refnode-cli/0.1"},
            timeout=self._timeout,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, body: Any = None,
                      query: Mapping[str, str | None] | None = None, *,
                      csv_file: BinaryIO | None = None, text: bool = False,
                      received: Callable[[int, int | None], None] | None = None) -> Any:
        """One request; the decoded JSON answer, or :class:`CliError` with the API's error.

        ``csv_file`` is sent as the body with ``Content-Type: text/csv`` (instead of ``body``
        as JSON), read and sent a piece at a time, never whole; with ``text`` a successful
        answer is returned as text (a CSV export). Errors are JSON either way.
        ``received(n, length)`` is told of each piece of the answer as it arrives (and
        the answer's Content-Length, if it has one)."""
        assert self._session is not None, "use 'async with ApiClient(...)'"
        params = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.base_url + path
        if csv_file is not None:
            send: dict[str, Any] = {"data": _pieces(csv_file), "timeout": UPLOAD_TIMEOUT,
                                    "headers": {"Content-Type": "text/csv; charset=utf-8"}}
        else:
            send = {"json": body}
        try:
            async with self._session.request(method, url, params=params, **send) as resp:
                if received is None:
                    raw = await resp.read()
                else:
                    pieces = bytearray()
                    async for piece in resp.content.iter_chunked(PIECE_BYTES):
                        pieces += piece
                        received(len(piece), resp.content_length)
                    raw = bytes(pieces)
                status = resp.status
                content_type = resp.content_type
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._unreachable(exc) from None
        if text and status < 400:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise CliError(f"{method} {path}: the answer is not UTF-8 text", status=status) from None
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = None
        error = data.get("error") if isinstance(data, dict) else None
        if data is None or (status >= 400 and not isinstance(error, dict)):
            raise CliError(f"something answers at {self.base_url}, but not as a refnode node does (HTTP {status}, "
                           f"{content_type or 'no content type'}){self._whose()}; is another program using "
                           "that port?", code="not_a_node", status=status)
        if status >= 400:
            assert isinstance(error, dict)
            if status == 401:
                raise CliError(await self._token_refused(str(error.get("message", ""))), code=error.get("code"),
                               status=status)
            detail = error.get("detail")
            raise CliError(str(error.get("message", f"HTTP {status}")), code=error.get("code"),
                           field=error.get("field"), status=status,
                           detail=detail if isinstance(detail, dict) else None)
        return data

    def _whose(self) -> str:
        return f" (expected the node of {self._data_dir})" if self._data_dir is not None else ""

    def _unreachable(self, exc: BaseException) -> CliError:
        """Nothing answered at all, or not in time."""
        if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
            return CliError(f"the node at {self.base_url} did not answer within {self._timeout_s:g} s; "
                            "it may be overloaded or stuck", code="timeout")
        os_error = getattr(exc, "os_error", None) or (exc if isinstance(exc, OSError) else None)
        if isinstance(os_error, OSError):
            reason = os.strerror(os_error.errno) if os_error.errno else (os_error.strerror or str(os_error))
        else:
            reason = exc.__class__.__name__
        folder = f" with this data folder ({self._data_dir})" if self._data_dir is not None else ""
        return CliError(f"no node answers at {self.base_url} ({reason.lower()}); is 'refnode serve' running{folder}?",
                        code="unreachable")

    async def _token_refused(self, message: str) -> str:
        """A node answers but refuses the token: say which node it is, for the user to
        see whether it is theirs."""
        assert self._session is not None
        who = "a node"
        try:
            async with self._session.get(self.base_url + DISCOVERY_PATH) as resp:
                _, keys = verify_discovery(await resp.read())
            who = f"{keys.name!r} (fingerprint {fingerprint_of(keys.node_id)})"
        except (aiohttp.ClientError, TimeoutError, OSError, ProtocolError, ValueError):
            pass
        return (f"{who} answers at {self.base_url} but does not accept the admin token from {self._token_source} "
                f"({message.rstrip('.')}): perhaps it is not the node of {self._data_dir or 'your data folder'}, "
                "or the token was revoked")

    def call(self, method: str, path: str, body: Any = None,
             query: Mapping[str, str | None] | None = None, *,
             csv_file: BinaryIO | None = None, text: bool = False,
             received: Callable[[int, int | None], None] | None = None) -> Any:
        """:meth:`request` from synchronous code (a fresh event loop per call)."""

        async def once() -> Any:
            async with self:
                return await self.request(method, path, body, query, csv_file=csv_file, text=text,
                                          received=received)

        return asyncio.run(once())
