"""What the node takes as input, whatever the field: text without control characters, and
integers that SQLite can store. Bodies, query strings, path ids and CSV cells all meet
these rules; the admin API's OpenAPI document states them (``LINE_PATTERN`` and
``TEXT_PATTERN`` are the same rules as JSON Schema patterns).

Text is one line unless a field says it may hold several (a note, a summary, a message):
no C0 control character (U+0000 to U+001F), no DEL (U+007F) and no lone surrogate; a
multi-line field also takes tab, line feed and carriage return (browsers send a line
break as CR LF). A NUL cut a search term short in SQLite, so ``q=%00`` matched
everything; the others break CSV files, logs and terminals.

``PlainText`` is the annotation a text type carries to apply the rule (before surrounding
whitespace is stripped, so that a leading tab is refused rather than quietly dropped).
``STORED`` is the validation context for rows read back from our own tables: text
stored before the rule existed stays readable; the rule is for what comes in.
``loads_input`` and ``json_problem`` are what the admin API's body parser applies to any
JSON body, whatever its model: each member once, nesting at most ``MAX_JSON_DEPTH``, the
text rule on every string, and integers within SQLite's range. ``NotNull`` and
``required_in_document`` keep the OpenAPI document exact where a model is laxer than the
handler behind it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationInfo
from pydantic_core import core_schema

#: SQLite's INTEGER range: an integer outside it cannot be stored or compared.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_LINE_BAD = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_TEXT_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
#: The rules as JSON Schema (ECMA-262) patterns, for the OpenAPI document.
LINE_PATTERN = "^[^\\u0000-\\u001f\\u007f]*$"
TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$"

#: ``model_validate(..., context=STORED)``: the data comes from our own tables.
STORED: dict[str, Any] = {"stored": True}


def is_stored(info: ValidationInfo) -> bool:
    """Whether a validator runs on data read back from our own tables."""
    return isinstance(info.context, dict) and info.context.get("stored") is True


def text_problem(text: str, *, multiline: bool = False) -> str | None:
    """Why ``text`` is refused, in words for the person who sent it, or None."""
    found = (_TEXT_BAD if multiline else _LINE_BAD).search(text)
    if found is None:
        return None
    char = found.group()
    where = f"at character {found.start() + 1}"
    if 0xD800 <= ord(char) <= 0xDFFF:
        return f"must be Unicode text: a lone surrogate U+{ord(char):04X} {where}"
    if char in "\t\n\r":
        return f"must be one line: no tab or line break ({where})"
    return f"must not contain control characters: U+{ord(char):04X} {where}"


def replace_refused(text: str, *, multiline: bool = False) -> str:
    """``text`` with every character the rule refuses shown as U+FFFD: for text the node
    writes itself from parts it quotes (a peer's reason, say) rather than refuses."""
    return (_TEXT_BAD if multiline else _LINE_BAD).sub("\ufffd", text)


def int_problem(value: int) -> str | None:
    if INT64_MIN <= value <= INT64_MAX:
        return None
    return f"must be between {INT64_MIN} and {INT64_MAX}"


@dataclass(frozen=True)
class PlainText:
    """``Annotated[str, ..., PlainText()]``: the text rule (last in the metadata, so it
    runs first, on the text as sent). ``max_length`` is checked on the text as sent too:
    a string padded with spaces past the limit is refused, as the document says."""

    multiline: bool = False
    max_length: int | None = None

    def _check(self, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str) or is_stored(info):
            return value
        problem = text_problem(value, multiline=self.multiline)
        if problem is None and self.max_length is not None and len(value) > self.max_length:
            problem = f"must be at most {self.max_length} characters"
        if problem is not None:
            raise ValueError(problem)
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.with_info_before_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        json_schema = handler(schema)
        json_schema.setdefault("pattern", TEXT_PATTERN if self.multiline else LINE_PATTERN)
        if self.max_length is not None:
            json_schema["maxLength"] = min(self.max_length, json_schema.get("maxLength", self.max_length))
        return json_schema


#: How deep a JSON document may nest: the deepest input model needs a handful of levels.
MAX_JSON_DEPTH = 32


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"member {key!r} appears twice")
            seen.add(key)
    return out


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def _number(text: str) -> Any:
    """A number with a fraction or exponent: JSON Schema counts ``3600.0`` as an integer,
    and so do we; any other stays a float, for the field's type to refuse."""
    value = Decimal(text)
    if value == value.to_integral_value() and abs(value.adjusted()) < 30:
        return int(value)
    return float(text)


_DECODER = json.JSONDecoder(parse_float=_number, parse_constant=_no_constant, object_pairs_hook=_no_duplicates)


def loads_input(raw: bytes) -> Any:
    """A JSON document sent to the node: UTF-8, each member once, no NaN or Infinity.
    Raises ``ValueError`` saying what is wrong, nesting too deep for the parser included
    (check what it returns with ``json_problem``)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"is not UTF-8 text (byte {exc.start})") from None
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError(f"is nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    except ValueError as exc:
        raise ValueError(f"is not JSON: {exc}") from None


@dataclass(frozen=True)
class NotNull:
    """``Annotated[X | None, NotNull()]``: a field that is None when not given but may not
    be sent as null (the store or the handler refuses it): the document leaves null out."""

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        json_schema = handler(schema)
        options = [o for o in json_schema.get("anyOf", []) if o.get("type") != "null"]
        if len(options) != 1:
            return json_schema
        return {**{k: v for k, v in json_schema.items() if k != "anyOf"}, **options[0]}


def required_in_document(*names: str) -> Any:
    """``json_schema_extra`` for a field the model lets be absent only to answer its own
    error code (``consent_required``): the document lists it as required."""

    def extra(schema: dict[str, Any]) -> None:
        schema["required"] = [*schema.get("required", []), *names]

    return extra


def json_problem(value: Any) -> tuple[str, str] | None:
    """The first thing in a parsed JSON document that no input may hold, as ``(dotted
    path, why)``: nesting deeper than ``MAX_JSON_DEPTH``, a string (member names
    included) that breaks the multi-line text rule, an integer outside SQLite's range.
    Fields that must be one line say so in their own type. Walks without recursion: the
    document may be nested as deep as the parser allowed."""
    stack: list[tuple[str, int, Any]] = [("", 0, value)]
    while stack:
        path, depth, item = stack.pop()
        where = path or "(body)"
        if isinstance(item, dict | list) and depth >= MAX_JSON_DEPTH:
            return (where, f"is nested too deeply (at most {MAX_JSON_DEPTH} levels)")
        if isinstance(item, dict):
            for key in item:
                key_problem = text_problem(key)
                if key_problem is not None:
                    return (where, f"member name {key_problem}")
            stack.extend((f"{path}.{key}" if path else key, depth + 1, sub) for key, sub in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}" if path else str(i), depth + 1, sub)
                         for i, sub in reversed(list(enumerate(item))))
        elif isinstance(item, str) and (problem := text_problem(item, multiline=True)) is not None:
            return (where, problem)
        elif isinstance(item, int) and not isinstance(item, bool) and (problem := int_problem(item)) is not None:
            return (where, problem)
    return None
