"""How ``q`` on the contacts and deals lists finds its rows fast, with the same answer.

A search is ``LIKE '%q%'`` on some of a row's fields (ASCII letters in either case). The
lists keep those conditions as they are, and this module adds a way to the matching rows
that does not read the whole table: the trigram indexes of migration 41
(``contacts_search``, ``deals_search``), which give the rowids of the rows that hold
every three-character piece of ``q`` (case folded: never fewer rows than ``LIKE``).

Which way a list takes depends on how many rows the index offers (:func:`plan`):

- *few* (up to :data:`DIRECT_MAX`): read just those rows, keep the ones the ``LIKE``
  conditions accept, and sort them; a rare name among a million contacts costs a few
  milliseconds instead of a second;
- *many*: walk the table in the list's order and stop once the page is full, as before.
  The term is then common, so a page of matches comes after a few thousand rows;
- *no index*: a ``q`` with no three characters in a row between ``%`` or ``_`` (which
  ``LIKE`` matches as written, escaped) gives the index nothing to look for; the table is
  walked. Such a search is fast when it matches often, and reads the table when it does
  not: searches of one or two characters are not indexed.
"""

from __future__ import annotations

import re
import sqlite3

#: Up to this many rows offered by the index, they are read and sorted; beyond, the
#: table is walked in order. Reading a row by rowid and sorting it costs about what
#: walking ten rows does, and a page of 100 among N matches of a million rows comes after
#: about 100 million / N rows: the two meet near sqrt(100 x 1,000,000) = 10,000.
DIRECT_MAX = 10_000
_WILDCARDS = re.compile(r"[%_]")


def index_pattern(q: str) -> str | None:
    """The ``LIKE`` pattern the trigram index takes for ``q``, or None when it can find
    nothing to look for. It has no ``ESCAPE`` clause (the index would be passed over):
    ``%`` and ``_`` in ``q`` are wildcards there, which can only offer more rows than the
    real, escaped condition accepts."""
    if max(len(run) for run in _WILDCARDS.split(q)) < 3:
        return None
    return f"%{q}%"


def offered(conn: sqlite3.Connection, index: str, pattern: str, *, cap: int) -> int:
    """How many rows ``index`` offers for ``pattern``, counting no further than ``cap``."""
    if index not in ("contacts_search", "deals_search"):
        raise ValueError(f"no search index {index!r}")
    row = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {index} WHERE text LIKE ? LIMIT ?)", (pattern, cap)
    ).fetchone()
    return int(row[0])


def plan(conn: sqlite3.Connection, q: str, indexes: tuple[str, ...]) -> str | None:
    """The pattern to give ``indexes`` for ``q`` when together they offer at most
    :data:`DIRECT_MAX` rows; None to walk the table instead."""
    pattern = index_pattern(q)
    if pattern is None:
        return None
    total = 0
    for index in indexes:
        total += offered(conn, index, pattern, cap=DIRECT_MAX + 1 - total)
        if total > DIRECT_MAX:
            return None
    return pattern


#: Rowids of the contacts and deals the trigram indexes offer for ``:pattern``.
CONTACT_ROWIDS = "SELECT rowid FROM contacts_search WHERE text LIKE :pattern"
DEAL_ROWIDS = "SELECT rowid FROM deals_search WHERE text LIKE :pattern"
#: Ids of the deals whose contacts the index offers.
DEALS_OF_CONTACTS = (
    "SELECT dc.deal_id FROM deal_contacts dc JOIN contacts c ON c.id = dc.contact_id "
    f"WHERE c.rowid IN ({CONTACT_ROWIDS})"
)
