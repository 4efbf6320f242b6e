"""How ``q`` on the contacts and deals lists finds its rows fast, with the same answer.

A search is ``LIKE '%q%'`` on some of a row's fields (ASCII letters in either case). The
lists keep those conditions as they are, and this module adds a way to the matching rows
that does not read the whole table: the trigram indexes of migration 41
(``contacts_search``, ``deals_search``), which give the rowids of the rows that hold
every three-character piece of ``q`` (case folded: never fewer rows than ``LIKE``), plus
the rows written since the indexer last ran (``search_pending``, see
:func:`index_pending`), which are offered too.

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


def index_query(q: str) -> str | None:
    """What to ask the trigram index for ``q``: every three-character piece of its runs
    between ``%`` and ``_`` (which ``LIKE`` matches as written, escaped, and the index does
    not see), all of them (an FTS5 query, each piece quoted). None when no run is three
    characters long: the index can find nothing to look for. A row that matches ``LIKE``
    holds every piece, so the index never offers fewer rows; it may offer more (pieces
    apart, or letters whose case only it folds), which the ``LIKE`` conditions then drop.
    Asking for the pieces rather than ``LIKE`` on the index spares its check of each row's
    text (ten times faster at a million contacts)."""
    pieces = sorted({run[i:i + 3] for run in _WILDCARDS.split(q) for i in range(len(run) - 2)})
    if not pieces:
        return None
    return " AND ".join('"' + piece.replace('"', '""') + '"' for piece in pieces)


def offered(conn: sqlite3.Connection, index: str, query: str, *, cap: int) -> int:
    """How many rows ``index`` offers for ``query`` (noted rows included), counting no
    further than ``cap``."""
    table = _TABLES[index]
    row = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {index} WHERE {index} MATCH ? UNION ALL "
        "SELECT 1 FROM search_pending WHERE tbl = ? LIMIT ?)", (query, table, cap)
    ).fetchone()
    return int(row[0])


def plan(conn: sqlite3.Connection, q: str, indexes: tuple[str, ...]) -> str | None:
    """The query to give ``indexes`` for ``q`` when together they offer at most
    :data:`DIRECT_MAX` rows; None to walk the table instead."""
    query = index_query(q)
    if query is None:
        return None
    total = 0
    for index in indexes:
        total += offered(conn, index, query, cap=DIRECT_MAX + 1 - total)
        if total > DIRECT_MAX:
            return None
    return query


_TABLES = {"contacts_search": "contacts", "deals_search": "deals"}

#: Rowids of the contacts and deals the trigram indexes offer for ``:pattern``, and of
#: those written since the indexer last ran.
CONTACT_ROWIDS = ("SELECT rowid FROM contacts_search WHERE contacts_search MATCH :pattern "
                  "UNION ALL SELECT rid FROM search_pending WHERE tbl = 'contacts'")
DEAL_ROWIDS = ("SELECT rowid FROM deals_search WHERE deals_search MATCH :pattern "
               "UNION ALL SELECT rid FROM search_pending WHERE tbl = 'deals'")


def waiting(conn: sqlite3.Connection, *, cap: int) -> int:
    """How many contacts and deals wait to be indexed, counting no further than ``cap``."""
    return int(conn.execute("SELECT count(*) FROM (SELECT 1 FROM search_pending LIMIT ?)", (cap,)).fetchone()[0])


def index_pending(conn: sqlite3.Connection, limit: int) -> int:
    """Index up to ``limit`` of the contacts and deals written since the last time, in
    the order they were written; how many. Their text is read now: an update made while
    they waited is in it (the update trigger leaves noted rows alone)."""
    done = 0
    for table in _TABLES.values():
        rids = [r[0] for r in conn.execute(
            "SELECT rid FROM search_pending WHERE tbl = ? ORDER BY rid LIMIT ?", (table, limit - done))]
        if not rids:
            continue
        marks = ", ".join("?" * len(rids))
        # the text as the index's view (migration 41) computes it
        conn.execute(f"INSERT INTO {table}_search (rowid, text) SELECT rowid, text FROM {table}_search_text "
                     f"WHERE rowid IN ({marks})", rids)
        conn.execute(f"DELETE FROM search_pending WHERE tbl = ? AND rid IN ({marks})", (table, *rids))
        done += len(rids)
        if done >= limit:
            break
    return done
