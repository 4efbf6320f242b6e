"""What the console's board and search show: deals as cards (title, contacts' names,
owner, amount), a column per stage, and deals and contacts found by a search term.

The board must stay fast with tens of thousands of deals in a stage: each column reads
at most a page of cards through the ``deals_stage_recent`` index (stage, then most
recently changed first: a deal just moved shows on top), and counts no further than a
cap (the index again). Card details (contacts, owners) are read for the cards shown,
never for the whole stage.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass

from node.crm.errors import CrmError
from node.crm.models import Contact, Stage, Workflow
from node.crm.store.contacts import _contact, list_contacts
from node.crm.store.sql import _like

_CARD_COLUMNS = ("d.id, d.title, d.amount, d.currency, d.owner_user_id, d.stage_id, d.workflow_id, d.updated_at,"
                 " d.rowid AS seq")
_CURSOR = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)\.([0-9]{1,18})")


@dataclass(frozen=True)
class Card:
    id: str
    title: str
    amount: str | None
    currency: str | None
    owner: str | None
    stage_id: str
    workflow_id: str
    #: The names of the deal's contacts, in their order.
    contacts: tuple[str, ...]
    #: Where a page of a stage that ends with this card leaves off (see :func:`stage_cards`).
    cursor: str


@dataclass(frozen=True)
class Column:
    stage: Stage
    #: Counted up to a cap: see :func:`stage_count`.
    count: int
    cards: list[Card]
    #: More cards follow these (the next page starts after the last one's cursor).
    more: bool


def contact_name(first: str | None, last: str | None, email: str | None) -> str:
    """A contact as people read it: their name, else their e-mail address."""
    return " ".join(p for p in (first, last) if p) or email or "(no name)"


def cards(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> list[Card]:
    """Cards for these deal rows (of :data:`_CARD_COLUMNS`), with contacts and owners."""
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    names: dict[str, list[str]] = {i: [] for i in ids}
    for r in conn.execute(
        "SELECT dc.deal_id, c.first_name, c.last_name, c.email FROM deal_contacts dc"
        " JOIN contacts c ON c.id = dc.contact_id"
        " WHERE dc.deal_id IN (SELECT value FROM json_each(?)) ORDER BY dc.deal_id, dc.position",
        (json.dumps(ids),),
    ):
        names[r["deal_id"]].append(contact_name(r["first_name"], r["last_name"], r["email"]))
    owners = {r["owner_user_id"] for r in rows if r["owner_user_id"]}
    people = dict(conn.execute(
        "SELECT id, name FROM users WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(sorted(owners)),)
    ).fetchall()) if owners else {}
    return [Card(r["id"], r["title"], r["amount"], r["currency"], people.get(r["owner_user_id"]),
                 r["stage_id"], r["workflow_id"], tuple(names[r["id"]]), f"{r['updated_at']}.{r['seq']}")
            for r in rows]


def stage_count(conn: sqlite3.Connection, stage_id: str, *, cap: int | None = None) -> int:
    """How many deals are in a stage; with ``cap``, counting stops past it (``cap + 1``
    then means "more than ``cap``"): the board's columns stay as quick with 50,000 deals
    in a stage as with 50."""
    if cap is None:
        return conn.execute("SELECT count(*) FROM deals WHERE stage_id = ?", (stage_id,)).fetchone()[0]
    return conn.execute("SELECT count(*) FROM (SELECT 1 FROM deals WHERE stage_id = ? LIMIT ?)",
                        (stage_id, cap + 1)).fetchone()[0]


def parse_cursor(text: str) -> tuple[str, int]:
    """A card's cursor, as a page's URL carries it; ``invalid`` if it is not one."""
    found = _CURSOR.fullmatch(text)
    if found is None:
        raise CrmError("invalid", "after must be where a page of cards left off", "after")
    return found.group(1), int(found.group(2))


def stage_cards(conn: sqlite3.Connection, stage_id: str, *, limit: int, after: str | None = None) -> list[Card]:
    """A page of a stage's deals, the most recently changed first; ``after`` a card's
    cursor, the page that follows it. A page costs the same at any depth (no OFFSET)."""
    where, params = "", []
    if after is not None:
        updated_at, seq = parse_cursor(after)
        where, params = " AND (d.updated_at < ? OR (d.updated_at = ? AND d.rowid < ?))", [updated_at, updated_at, seq]
    rows = conn.execute(
        f"SELECT {_CARD_COLUMNS} FROM deals d WHERE d.stage_id = ?{where}"
        " ORDER BY d.updated_at DESC, d.rowid DESC LIMIT ?",
        (stage_id, *params, limit),
    ).fetchall()
    return cards(conn, rows)


def board(conn: sqlite3.Connection, workflow: Workflow, *, per_stage: int, count_cap: int,
          only: Stage | None = None, after: str | None = None) -> list[Column]:
    """The columns of ``workflow``'s board, ``per_stage`` cards each and their deals
    counted up to ``count_cap`` (see :func:`stage_count`); with ``only``, that stage's
    column alone, from ``after``."""
    columns = []
    for stage in [only] if only is not None else workflow.stages:
        count = stage_count(conn, stage.id, cap=count_cap)
        shown = stage_cards(conn, stage.id, limit=per_stage + 1, after=after if only else None) if count else []
        columns.append(Column(stage, count, shown[:per_stage], len(shown) > per_stage))
    return columns


def search_contacts(conn: sqlite3.Connection, q: str, *, limit: int) -> list[Contact]:
    """Contacts whose names, e-mail or phone contain ``q``."""
    return list_contacts(conn, q=q, limit=limit)


def search_deals(conn: sqlite3.Connection, q: str, contact_ids: list[str], *, limit: int) -> list[Card]:
    """Deals whose title contains ``q``, then deals of these contacts (found by ``q``):
    at most ``limit``, the most recently changed first within each."""
    by_title = conn.execute(
        f"SELECT {_CARD_COLUMNS} FROM deals d WHERE d.title LIKE ? ESCAPE '\\' LIMIT ?",
        (_like(q), limit),
    ).fetchall()
    of_contacts = conn.execute(
        f"SELECT DISTINCT {_CARD_COLUMNS}, d.updated_at FROM deal_contacts dc JOIN deals d ON d.id = dc.deal_id"
        " WHERE dc.contact_id IN (SELECT value FROM json_each(?)) ORDER BY d.updated_at DESC LIMIT ?",
        (json.dumps(contact_ids), limit),
    ).fetchall() if contact_ids else []
    seen: set[str] = set()
    rows = []
    for row in [*by_title, *of_contacts]:
        if row["id"] not in seen and len(rows) < limit:
            seen.add(row["id"])
            rows.append(row)
    return cards(conn, rows)


def stage_places(conn: sqlite3.Connection) -> dict[str, tuple[str, str]]:
    """Every stage's (workflow name, stage name), by stage id: to name where a card is."""
    rows = conn.execute("SELECT s.id, w.name, s.name FROM stages s JOIN workflows w ON w.id = s.workflow_id")
    return {r[0]: (r[1], r[2]) for r in rows}


def contacts_by_name(conn: sqlite3.Connection, *, limit: int, offset: int = 0) -> tuple[int, list[Contact]]:
    """How many contacts there are, and a page of them by last then first name (the
    ``contacts_name`` index's order)."""
    total = conn.execute("SELECT count(*) FROM contacts").fetchone()[0]
    rows = conn.execute(
        "SELECT * FROM contacts ORDER BY last_name COLLATE NOCASE, first_name COLLATE NOCASE LIMIT ? OFFSET ?",
        (limit, offset),
    ).fetchall()
    return total, [_contact(r) for r in rows]


def contact_deals(conn: sqlite3.Connection, contact_id: str, *, limit: int) -> list[Card]:
    """The deals a contact is on, the most recently changed first."""
    rows = conn.execute(
        f"SELECT {_CARD_COLUMNS} FROM deal_contacts dc JOIN deals d ON d.id = dc.deal_id"
        " WHERE dc.contact_id = ? ORDER BY d.updated_at DESC LIMIT ?",
        (contact_id, limit),
    ).fetchall()
    return cards(conn, rows)


def contacts_by_id(conn: sqlite3.Connection, ids: list[str]) -> dict[str, Contact]:
    """The contacts of these ids that exist, by id (a form names them; some may be gone)."""
    rows = conn.execute("SELECT * FROM contacts WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(ids),))
    return {r["id"]: _contact(r) for r in rows}
