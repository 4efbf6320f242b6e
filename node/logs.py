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

Logs from the standard library (aiohttp's access and server logs) go through the same
formatter, so they are rendered, and redacted, the same way.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

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


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler we install, so configuring again replaces it."""


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
    # Redaction runs in the formatter, so it covers structlog and stdlib records alike.
    rendering: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        redact_secrets,
    ]
    if format == "json":
        rendering += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        rendering += [structlog.dev.ConsoleRenderer(colors=_isatty(out))]

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    handler = _OurHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=rendering)
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_number)
    # The scheduler logs every tick of the delivery sweep at info: only its warnings matter.
    logging.getLogger("apscheduler").setLevel(max(level_number, logging.WARNING))


def failure_fields(exc: BaseException) -> dict[str, str]:
    """What to log of an unexpected exception: its type and where it was raised, never its
    message or a traceback's text (a validation error's message repeats the input, which
    may be client data)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename.rsplit('/', 2)[-1]}:{tb.tb_lineno}" if tb else "?"
    return {"error": type(exc).__name__, "raised_at": where}


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger for module ``name``; bind ``peer``, ``envelope_id``, ``type`` and such."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
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
