"""Strict JSON limits (spec 3.2): nesting depth at most 32, integers within +-(2^53 - 1).
Before, neither was stated: a parser's recursion limit decided the depth, and any
integer was read (issue 15, gap 6)."""

from __future__ import annotations

import time

import pytest
from protocol_support import load_vector

from protocol.encoding import loads_object, loads_strict
from protocol.errors import RemoteProtocolError
from protocol.wire import MAX_JSON_DEPTH, MAX_JSON_INTEGER


def _refused(text: str) -> str:
    with pytest.raises(RemoteProtocolError) as caught:
        loads_strict(text)
    assert caught.value.code.value == "malformed"
    return caught.value.message


def test_the_limits_are_the_spec_constants() -> None:
    assert (MAX_JSON_DEPTH, MAX_JSON_INTEGER) == (32, 9007199254740991)


@pytest.mark.parametrize("n", [MAX_JSON_INTEGER, -MAX_JSON_INTEGER, 0, 1048576])
def test_integers_in_range(n: int) -> None:
    assert loads_strict(f'{{"n":{n}}}') == {"n": n}


@pytest.mark.parametrize(
    "n",
    [str(MAX_JSON_INTEGER + 1), str(-MAX_JSON_INTEGER - 1), "1" + "0" * 30, "-" + "9" * 5000],
    ids=["2^53", "-2^53", "10^30", "5000 digits"],
)
def test_integers_out_of_range(n: str) -> None:
    assert "2^53" in _refused(f'{{"n":{n}}}')


def test_depth_is_counted_from_the_outermost_container() -> None:
    for shape in ("[", '{"a":'):
        close = "]" if shape == "[" else "}"
        ok = '{"a":' * (MAX_JSON_DEPTH - 1) + "[]" + "}" * (MAX_JSON_DEPTH - 1)
        assert loads_strict(ok) is not None
        deep = shape * MAX_JSON_DEPTH + "[]" + close * MAX_JSON_DEPTH
        assert "deeper than 32" in _refused(deep)


def test_very_deep_input_is_refused_quickly() -> None:
    text = "[" * 500_000 + "]" * 500_000  # about 1 MiB, the inbox's limit
    started = time.perf_counter()
    _refused(text)
    assert time.perf_counter() - started < 2.0


def test_the_vectors_pin_both_limits() -> None:
    texts = {c["text"]: c.get("error") for c in load_vector("encoding.json")["json"]["reject"]}
    assert texts['{"n":9007199254740992}'] == "malformed"
    assert texts["[" * 33 + "1" + "]" * 33] == "malformed"
    accepted = [c["text"] for c in load_vector("encoding.json")["json"]["accept"]]
    assert "[" * 32 + "1" + "]" * 32 in accepted and '{"n":9007199254740991}' in accepted


def test_a_duplicate_member_is_named_not_the_first_member() -> None:
    assert _refused('{"a":1,"b":2,"b":3}') == "duplicate member 'b'"


def test_text_with_a_lone_surrogate_is_not_utf_8() -> None:
    """Text handed over as str (not bytes) is held to UTF-8 too: a lone surrogate is none."""
    assert _refused('{"a":"\ud800"}') == "document is not UTF-8"


def test_a_document_is_called_a_document_unless_its_caller_names_it() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        loads_object("[1]")
    assert caught.value.message == "document must be a JSON object"
