"""The base of every wire model, and the small types fields are built from.

Models are frozen. Unknown members are refused (``malformed``), except when the message
says it is a newer minor version than ours: then they are dropped, which is the spec's
extension rule ("a newer minor is accepted and its unknown fields ignored").
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from protocol.errors import RemoteProtocolError
from protocol.wire import ErrorCode

#: Context key: when true, members a model does not know are dropped instead of refused.
LENIENT = "newer_minor"


class WireModel(BaseModel):
    # defer_build: a model's validator is built on its first use, not at import; an idle
    # node then holds none of those it has not needed (see bench/idle_memory.py).
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_unknown_when_newer(cls, data: Any, info: ValidationInfo) -> Any:
        if info.context and info.context.get(LENIENT) and isinstance(data, dict):
            known = {f.alias or name for name, f in cls.model_fields.items()}
            return {k: v for k, v in data.items() if k in known}
        return data

    def wire(self) -> dict[str, Any]:
        """The JSON-ready form: aliases, and no members that are None."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


M = TypeVar("M", bound=WireModel)


def validate(model: type[M], data: Any, *, lenient: bool = False, what: str | None = None) -> M:
    """Validate ``data`` as ``model``; every failure becomes ``malformed`` with the field path.

    Only wire names are accepted (``from``, never the Python name ``from_``).
    """
    null_at = _null_member(data)
    if null_at is not None:
        where = ".".join(null_at) or "(root)"
        raise RemoteProtocolError(
            ErrorCode.MALFORMED,
            f"{what or model.__name__}: {where}: null is not a value; omit the member instead",
            errors=[{"loc": null_at, "msg": "null is not allowed"}],
        )
    try:
        return model.model_validate(data, context={LENIENT: lenient}, by_alias=True, by_name=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise RemoteProtocolError(
            ErrorCode.MALFORMED,
            f"{what or model.__name__}: {where}: {first['msg'].removeprefix('Value error, ')}",
            errors=[{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in exc.errors()[:10]],
        ) from None


def _null_member(data: Any, path: tuple[str, ...] = ()) -> list[str] | None:
    """The path of the first ``null`` anywhere in ``data``, or None. The spec has no null:
    an optional member without a value is omitted, and a null is ``malformed`` wherever it
    stands (optional, required or unknown member, or array element)."""
    if data is None:
        return list(path)
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return None
    for key, value in items:  # asked of every message: no call, and no path, for a scalar
        if value is None:
            return [*path, str(key)]
        if isinstance(value, (dict, list)) and (found := _null_member(value, (*path, str(key)))) is not None:
            return found
    return None


_TS_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
_TS = re.compile(_TS_RE)


def _real_time(text: str) -> str:
    try:
        datetime.fromisoformat(text[:-1])  # the pattern has already checked the shape
    except ValueError:
        raise ValueError(f"{text!r} is not a real date and time") from None
    return text


#: A time on the wire: RFC 3339, UTC, whole seconds, e.g. ``2026-11-23T11:30:00Z``.
Timestamp = Annotated[str, StringConstraints(pattern=_TS_RE), AfterValidator(_real_time)]
#: A node id: the base64url RFC 7638 thumbprint of the identity key (43 characters).
NodeId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]
#: An identifier chosen by the sender: 1 to 64 characters of ``[A-Za-z0-9_-]``.
Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
#: A decimal number as a string (money): up to 15 integer and 4 fraction digits.
Decimal = Annotated[str, StringConstraints(pattern=r"^-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,4})?$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,253}$", max_length=254)]
#: A lowercase token: ``mortgage``, ``asset-finance``.
Token = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
#: Base64url of a SHA-256 digest.
Digest = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]
ShortText = Annotated[str, StringConstraints(max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=8000)]


def format_ts(moment: datetime) -> str:
    """A datetime as a wire timestamp (UTC, whole seconds)."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    utc = moment.astimezone(UTC)
    if utc.year < 1000:  # strftime writes such a year as it is, without leading zeros
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    # The same text as strftime at a third of its cost (an f-string costs twice this).
    parts = (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second)
    return "%d-%02d-%02dT%02d:%02d:%02dZ" % parts  # noqa: UP031


def parse_ts(text: str) -> datetime:
    if not _TS.match(text):
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"bad timestamp {text!r}")
    try:
        return datetime.fromisoformat(text[:-1]).replace(
            tzinfo=UTC
        )  # the pattern checked the shape
    except ValueError:
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"bad timestamp {text!r}") from None
