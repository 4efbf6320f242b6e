"""Spec 12.3: redeeming an invitation, the requester's wish may narrow the invitation's
direction, never widen it; with nothing in common the request is refused.

Three places say it, and they must say one thing: the table in docs/protocol.md 12.3, the
nine rows of ``direction`` in docs/vectors/invitations.json, and
:func:`protocol.direction.grant_for_invitation`."""

from __future__ import annotations

import re
from typing import Any

import pytest
from protocol_support import ROOT, load_vector

from protocol.direction import MIRROR, grant_for_invitation
from protocol.errors import RemoteProtocolError

DIRECTIONS = ("both", "send", "receive")
ROWS: list[dict[str, Any]] = load_vector("invitations.json")["direction"]["cases"]


def _row_id(row: dict[str, Any]) -> str:
    return f"invitation {row['invitation']}, asked {row['asked']}"


def spec_table() -> dict[tuple[str, str], str | None]:
    """The table of 12.3: (invitation, asked) -> granted (responder's view), None if refused."""
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = text.split("### 12.3 Direction", 1)[1].split("\n### ", 1)[0]
    header = re.search(r"^\s*\| Invitation .*\|$", section, re.M)
    assert header is not None, "12.3 has no invitation table"
    asked = re.findall(r"Asked `(\w+)`", header.group(0))
    assert sorted(asked) == sorted(DIRECTIONS)
    table: dict[tuple[str, str], str | None] = {}
    for line in section[header.end():].splitlines()[2:]:
        if not line.strip().startswith("|"):
            break
        first, *cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for column, cell in zip(asked, cells, strict=True):
            table[(first.strip("`"), column)] = None if cell == "refused" else cell.strip("`")
    return table


def test_the_vectors_give_every_pair_once() -> None:
    assert sorted((r["invitation"], r["asked"]) for r in ROWS) == sorted(
        (i, a) for i in DIRECTIONS for a in DIRECTIONS
    )


def test_the_vectors_say_what_the_spec_table_says() -> None:
    table = spec_table()
    assert len(table) == 9
    assert {(r["invitation"], r["asked"]): r.get("granted") for r in ROWS} == table


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_the_code_grants_what_the_vector_says(row: dict[str, Any]) -> None:
    if "error" in row:
        assert "granted" not in row and "accept_direction" not in row
        with pytest.raises(RemoteProtocolError) as caught:
            grant_for_invitation(row["invitation"], row["asked"])
        assert caught.value.code.value == row["error"] == "direction_not_allowed"
        assert caught.value.detail == row["detail"]
    else:
        granted = grant_for_invitation(row["invitation"], row["asked"])
        assert granted == row["granted"]
        # the connection-accept carries the grant from the requester's view
        assert MIRROR[granted] == row["accept_direction"]


def test_the_grant_is_within_both_the_invitation_and_the_wish() -> None:
    flows = {"send": {"send"}, "receive": {"receive"}, "both": {"send", "receive"}}
    for row in ROWS:
        if "granted" in row:
            assert flows[row["granted"]] <= flows[row["invitation"]]
            assert flows[row["accept_direction"]] <= flows[row["asked"]]
        else:  # refused only when nothing is in common
            assert not flows[row["invitation"]] & flows[MIRROR[row["asked"]]]


def test_the_spec_example_an_agency_asking_send_on_a_both_invitation() -> None:
    (row,) = [r for r in ROWS if (r["invitation"], r["asked"]) == ("both", "send")]
    assert (row["granted"], row["accept_direction"]) == ("receive", "send")
