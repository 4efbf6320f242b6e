"""Logging: structlog, as JSON lines in production and readable lines in a terminal.

**The rule** is what we bind, not what we filter: log events carry only ``peer``,
``envelope_id``, ``type``, ``connection_id``, ``referral_id``, status and error codes,
and counts (attempts, sizes, durations). Never keys, tokens, passphrases, invitation
secrets, or anything about a client: no names, e-mail addresses, phone numbers,
addresses, dates of birth, messages, bodies or payloads. Do not format such values into
the event text either: nothing can redact that.

:func:`redact_secrets` is only the safety net under that rule: any event key whose name
looks like a secret or client data (``token``, ``passphrase``, ``email``, ``name``,
``payload``..., also inside nested dicts and lists, also ``user_email`` or ``apiKey``)
has its value replaced by ``"[redacted]"``, as has any string value that looks like an
invitation key (``rnk1_...``) or a PEM block. A handful of known-safe keys (``type``,
``message_type``, ``kid``, ``node_id``...) are left alone even though they contain a
suspicious word.

Our own events are filtered by level, redacted and rendered by structlog itself, and the
line is written straight to the stream: no standard-library ``LogRecord`` on the way (that
round trip cost as much as all the rest of a line, and one is logged per inbound
envelope), so they reach no other ``logging`` handler either (pytest's ``caplog`` does not
see them; pass ``stream``). Logs from the standard library (aiohttp's access and server
logs, asyncio) go through a ``logging`` handler whose formatter runs the
same processors, so they are rendered, and redacted, the same way; that handler also
writes our lines, under its lock.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import traceback
from collections.abc import Callable
from typing import Any, Literal, TextIO


def _import_structlog() -> Any:
    """``import structlog``, without the optional packages it loads at once when they are
    installed, none of which we use: 4.5 MiB of resident memory in all. ``rich`` (with
    pygments) is for tracebacks in its console renderer that show every frame's local
    variables: client data and keys, which must never reach a log, so the renderer is given
    the plain formatter, as it would be without rich. ``colorama`` colours a Windows
    console (elsewhere the same ANSI codes are written without it), and ``greenlet`` serves
    its thread-local context, which we do not use (we bind with contextvars). They are
    hidden while structlog loads, if nothing loaded them before, and stay importable for
    whoever wants them (the CLI's progress bars)."""
    if "structlog" in sys.modules:
        return sys.modules["structlog"]
    optional = ("rich", "greenlet") if sys.platform == "win32" else ("rich", "colorama", "greenlet")
    hidden = [name for name in optional if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # ``import name`` raises ImportError
    try:
        import structlog as module
    finally:
        for name in hidden:
            del sys.modules[name]
    return module


structlog = _import_structlog()
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger  # noqa: E402

REDACTED = "[redacted]"

#: Words that make a key sensitive when they appear as one of its parts
#: (``user_email``, ``apiKey``, ``X-Auth-Token``...), singular or plural.
SENSITIVE_WORDS = frozenset(
    {
        "token", "secret", "password", "passwd", "passphrase", "key", "authorization", "auth",
        "cookie", "credential", "seed",
        "email", "mail", "phone", "mobile", "name", "firstname", "lastname", "surname",
        "address", "postcode", "birth", "dob", "dateofbirth", "message", "body", "bodies",
        "payload", "plaintext", "note",
    }
)  # fmt: skip

#: Keys that are safe although a part of them is in :data:`SENSITIVE_WORDS`.
SAFE_KEYS = frozenset(
    {
        "event", "level", "logger", "logger_name", "timestamp", "exception", "stack",
        "peer", "envelope_id", "type", "message_type", "connection_id", "referral_id",
        "status", "code", "error_code", "count", "kid", "key_id", "node_id", "peer_node_id",
        "suite", "attempt", "attempts",
    }
)  # fmt: skip

_SECRET_VALUE = re.compile(r"rnk1_|-----BEGIN ")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_MAX_DEPTH = 6


@functools.lru_cache(maxsize=4096)  # log lines use a few dozen keys, over and over
def is_sensitive_key(key: str) -> bool:
    """True when ``key`` names something that must not be logged."""
    if key in SAFE_KEYS:
        return False
    words = [w for w in _WORD_SPLIT.split(_CAMEL.sub("_", key).lower()) if w]
    candidates = set(words) | {"".join(words)}
    for word in list(candidates):
        if word.endswith("es"):
            candidates.add(word[:-2])
        if word.endswith("s"):
            candidates.add(word[:-1])
    return not candidates.isdisjoint(SENSITIVE_WORDS)


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return REDACTED if _SECRET_VALUE.search(value) else value
    if isinstance(value, bytes | bytearray | memoryview):
        return REDACTED  # raw bytes in a log line are keys, ciphertext or payload: never useful
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and is_sensitive_key(k) else _scrub(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v, depth + 1) for v in value)
    return value


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace the values of sensitive keys by ``"[redacted]"``."""
    for key in list(event_dict):
        if key == "event":
            continue
        if is_sensitive_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


_ENCODERS: dict[Callable[[Any], Any], json.JSONEncoder] = {}


def _dumps(obj: Any, *, default: Callable[[Any], Any]) -> str:
    """``json.dumps(obj, default=default)``, but with the encoder made once, not for every
    line (``json.dumps`` makes a new one whenever it is given ``default``, as
    :class:`structlog.processors.JSONRenderer` does)."""
    encoder = _ENCODERS.get(default)
    if encoder is None:
        encoder = _ENCODERS[default] = json.JSONEncoder(default=default)
    return encoder.encode(obj)


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler we install on the root logger, so configuring again replaces it. It
    formats standard-library records, and writes our own, already rendered, lines too:
    under its lock, so the two kinds of line never interleave, whatever thread logs."""

    def write_line(self, name: str, line: str) -> None:
        self.acquire()
        try:
            self.stream.write(line + self.terminator)
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.report_error(name, line)
        finally:
            self.release()

    def report_error(self, name: str, message: str) -> None:
        """Report the exception being handled as ``logging`` reports a record it cannot
        format or write: on stderr, and never to the code that was logging."""
        self.handleError(logging.makeLogRecord({"name": name, "msg": message}))


class _Chain:
    """The processors for our events, run as one, so that an event that cannot be
    processed or rendered is reported and dropped, as ``logging`` does with a record,
    instead of raising at the caller (who may be in the middle of answering a peer)."""

    __slots__ = ("_handler", "_processors")

    def __init__(self, processors: list[Processor], handler: _OurHandler) -> None:
        self._processors = processors
        self._handler = handler

    def __call__(self, logger: _Lines, method_name: str, event_dict: EventDict) -> Any:
        rendered: Any = event_dict
        try:
            for processor in self._processors:
                rendered = processor(logger, method_name, rendered)
        except RecursionError:
            raise
        except Exception:
            self._handler.report_error(logger.name, repr(event_dict.get("event")))
            raise structlog.DropEvent from None
        return rendered


class _Lines:
    """What structlog wraps for our events: it hands each rendered line to the handler.
    Named, so :func:`structlog.stdlib.add_logger_name` finds the logger's name here."""

    __slots__ = ("_handler", "name")

    def __init__(self, handler: _OurHandler, name: str = "") -> None:
        self._handler = handler
        self.name = name

    def msg(self, line: str) -> None:
        self._handler.write_line(self.name, line)

    # The method names structlog's filtering loggers call on what they wrap.
    debug = info = warning = error = critical = notset = msg


def configure_logging(
    format: Literal["console", "json"] = "console",
    level: str = "info",
    *,
    stream: TextIO | None = None,
) -> None:
    """Send structlog and standard-library logs to ``stream`` (default: stderr) as JSON
    lines (``"json"``) or readable text (``"console"``), dropping events below ``level``."""
    if format not in ("console", "json"):
        raise ValueError(f"log format must be 'console' or 'json', not {format!r}")
    levels = logging.getLevelNamesMapping()
    if level.upper() not in levels:
        raise ValueError(f"unknown log level {level!r}")
    level_number = levels[level.upper()]
    out = stream if stream is not None else sys.stderr

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        timestamper,
    ]
    # Redaction comes last before rendering, for our events and stdlib records alike.
    rendering: list[Processor] = [redact_secrets]
    if format == "json":
        rendering += [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(_dumps),
        ]
    else:
        rendering += [structlog.dev.ConsoleRenderer(colors=_isatty(out),
                                                   exception_formatter=structlog.dev.plain_traceback)]

    handler = _OurHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, scrub_foreign],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        )
    )
    # Our own events never become LogRecords: structlog filters them by level (below it,
    # a method is an empty function), renders them and hands the line to the handler.
    # Not cached on first use: loggers are made at import, before this runs, and must
    # follow every later call (tests configure again, with another stream or level).
    structlog.configure(
        processors=[
            _Chain(
                [
                    *shared,
                    # ``stack_info=True`` shows the caller's stack, not _Chain's frame.
                    structlog.processors.StackInfoRenderer(additional_ignores=[__name__]),
                    *rendering,
                ],
                handler,
            )
        ],
        logger_factory=functools.partial(_Lines, handler),
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_number)


_QUERY = re.compile(r"\?[^\s\"'<>]*")


def scrub_foreign(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """For records from other libraries (aiohttp's server errors, asyncio): what they say
    may quote the request, and the request may carry client data. Query strings leave the
    message, and an exception keeps its type and the frames it passed through, never its
    message (aiohttp's "line too long" error quotes the start of the URL)."""
    event = event_dict.get("event")
    if isinstance(event, str) and "?" in event:
        event_dict["event"] = _QUERY.sub("?" + REDACTED, event)
    exc_info = event_dict.pop("exc_info", None)
    if exc_info:
        exc = exc_info[1] if isinstance(exc_info, tuple) else sys.exc_info()[1]
        if exc is not None:
            event_dict.update(failure_fields(exc))
            event_dict["frames"] = [f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} {f.name}"
                                    for f in traceback.extract_tb(exc.__traceback__)]
    return event_dict


def failure_fields(exc: BaseException) -> dict[str, str]:
    """What to log of an unexpected exception: its type and where it was raised, never its
    message or a traceback's text (a validation error's message repeats the input, which
    may be client data)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename.rsplit('/', 2)[-1]}:{tb.tb_lineno}" if tb else "?"
    return {"error": type(exc).__name__, "raised_at": where}


def get_logger(name: str) -> FilteringBoundLogger:
    """A logger for module ``name``; bind ``peer``, ``envelope_id``, ``type`` and such."""
    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


__all__ = [
    "REDACTED",
    "configure_logging",
    "get_logger",
    "is_sensitive_key",
    "redact_secrets",
]
