from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from node.base.ids import new_id


def test_shape_prefix_and_crockford_lowercase() -> None:
    value = new_id("deal")
    assert re.fullmatch(r"deal_[0-9a-hjkmnp-tv-z]{26}", value)


def test_ids_sort_by_the_time_given() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [new_id("ct", t0 + timedelta(milliseconds=ms)) for ms in (5, 1, 3, 1000, 2)]
    by_time = [ids[i] for i in (1, 4, 2, 0, 3)]
    assert sorted(ids) == by_time


def test_same_millisecond_ids_differ_and_keep_creation_order() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [new_id("x", t0) for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert sorted(ids) == ids
    assert len({i[:12] for i in ids}) == 1  # the 10-character time part is shared


def test_time_part_is_48_bit_milliseconds() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    body = new_id("x", t0)[2:]
    value = 0
    for ch in body:
        value = value * 32 + alphabet.index(ch)
    assert value >> 80 == int(t0.timestamp() * 1000)


def test_random_part_of_same_millisecond_ids_grows_by_a_random_step() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    values = []
    for text in (new_id("x", t0) for _ in range(200)):
        value = 0
        for ch in text[2:]:
            value = value * 32 + alphabet.index(ch)
        values.append(value)
    assert {v >> 80 for v in values} == {int(t0.timestamp() * 1000)}
    steps = [b - a for a, b in zip(values, values[1:], strict=False)]
    assert all(1 <= step <= 2**32 for step in steps)  # last + 1 + randbits(32)
    assert len(set(steps)) > 150  # random steps, not a counter


@pytest.mark.parametrize("prefix", ["", "Deal", "a_b", "1x", "x" * 17])
def test_bad_prefix_refused(prefix: str) -> None:
    with pytest.raises(ValueError):
        new_id(prefix)


def test_naive_time_refused() -> None:
    with pytest.raises(ValueError):
        new_id("x", datetime(2026, 1, 1))


def test_a_forked_child_draws_its_own_random_bits():
    """ids take their random bits from a pool: a forked child must not reuse its parent's."""
    import os

    from node.base.ids import new_id

    new_id("deal")  # the pool is filled in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the id it makes, and leave at once
        os.write(write, new_id("deal").encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    parent = new_id("deal")
    assert child[-16:] != parent[-16:]  # the random parts (the time parts may be equal)
