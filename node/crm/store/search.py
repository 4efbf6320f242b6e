"""How ``q`` on the contacts and deals lists finds its rows fast, with the same answer.

A search is ``LIKE '%q%'`` on some of a row's fields (ASCII letters in either case). The
lists keep those conditions as they are, and this module adds a way to the matching rows
that does not read the whole table: the trigram indexes of migration 41
(``contacts_search``, ``deals_search``), which give the rowids of the rows that hold the
runs of ``q`` as phrases (case folded: never fewer rows than ``LIKE``), plus
the rows written since the indexer last ran (``search_pending``, see
:func:`index_pending`), which are offered too.

A list's page comes first from :func:`first_page`: the indexes give their rows in rowid
order, which is the lists' order for every row but those migration 70 notes in
``search_disorder`` (written out of created order); the page is the first rows offered
that the ``LIKE`` conditions accept, merged with those of the noted and waiting rows,
each checked. Its cost follows the page, not how many rows match: a surname on 8,000
of a million deals reads about a page of them. A deal's contacts are in an index of
their own for this, ``deal_people`` (migration 70), keyed by the deal.

When too many rows are noted or waiting (:data:`LOOSE_MAX`: a large import not yet
indexed, or one of old rows), or the list is not read as a page from its start (an
export reads every row, a page at a time after the last), the way depends on how many
rows the index offers (:func:`plan`):

- *few* (up to :data:`DIRECT_MAX`): read just those rows, keep the ones the ``LIKE``
  conditions accept, and sort them; a rare name among a million contacts costs a few
  milliseconds instead of a second;
- *many*: walk the table in the list's order, checking each row, for at most
  :data:`WINDOW` rows (:func:`first_matches`): a common term fills a page long before.
  When its rows come late in the order (a name that appeared last month), the window
  holds too few and the rows the index offers are read and sorted after all;
- *no index*: a ``q`` of one or two characters gives the trigram index nothing to look
  for; the table is walked. Such a search is fast when it matches often, and reads the
  table when it does not.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Up to this many rows offered by the index, they are read and sorted; beyond, the
#: table is walked in order. Reading a row by rowid and sorting it costs about what
#: walking ten rows does, and a page of 100 among N matches of a million rows comes after
#: about 100 million / N rows: the two meet near sqrt(100 x 1,000,000) = 10,000.
DIRECT_MAX = 10_000
#: Rows a common term's search walks before it reads the rows the index offers instead.
WINDOW = 20_000
#: Rows out of created order or waiting to be indexed that :func:`first_page` checks one
#: by one; beyond, it leaves the search to the ways of :func:`plan`.
LOOSE_MAX = 10_000


def index_query(q: str, column: str | None = None) -> str | None:
    """What to ask a trigram index for ``q``: ``q`` as a phrase (an FTS5 query), in
    ``column`` only when given; None when ``q`` is shorter than three characters (the
    index can find nothing to look for). The lists match ``q`` literally (``%`` and ``_``
    escaped), ASCII letters in either case; the index folds the case of every letter, so
    it never offers fewer rows, and may offer more (``É`` for ``é``), which the ``LIKE``
    conditions then drop."""
    if len(q) < 3:
        return None
    return ("" if column is None else f"{column} : ") + '"' + q.replace('"', '""') + '"'


def offered(conn: sqlite3.Connection, index: str, query: str, *, cap: int) -> int:
    """How many rows ``index`` offers for ``query`` (noted rows included), counting no
    further than ``cap``."""
    table = _TABLES[index]
    row = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {index} WHERE {index} MATCH ? UNION ALL "
        "SELECT 1 FROM search_pending WHERE tbl = ? LIMIT ?)", (query, table, cap)
    ).fetchone()
    return int(row[0])


@dataclass(frozen=True)
class Plan:
    """How a search goes: ``queries`` for each index (None: ``q`` is too short for them,
    walk the table), and whether they offer more than :data:`DIRECT_MAX` rows."""

    queries: dict[str, str] | None
    many: bool = False


def plan(conn: sqlite3.Connection, q: str, indexes: dict[str, str | None]) -> Plan:
    """What to ask each of ``indexes`` (index: the column it is searched in, or None for
    all) for ``q``, and whether together they offer more than :data:`DIRECT_MAX` rows."""
    queries: dict[str, str] = {}
    total = 0
    for index, column in indexes.items():
        query = index_query(q, column)
        if query is None:
            return Plan(None)
        total += offered(conn, index, query, cap=DIRECT_MAX + 1 - total)
        queries[index] = query
    return Plan(queries, many=total > DIRECT_MAX)


def first_matches(conn: sqlite3.Connection, sql: str, params: dict[str, Any], offset: int,
                  limit: int) -> list[int] | None:
    """Walk ``sql`` (it selects each row's rowid and whether it matches, in the list's
    order, ending in ``LIMIT :window``) for the rowids of matches ``offset`` to
    ``offset + limit``; None when the first :data:`WINDOW` rows hold fewer."""
    need = offset + limit
    found: list[int] = []
    for rowid, hit in conn.execute(sql, {**params, "window": WINDOW}):
        if hit:
            found.append(rowid)
            if len(found) == need:
                return found[offset:]
    return None


def offered_by(index: str) -> str:
    """What ``index`` offers for the FTS5 query ``:fts``, in rowid order (a source of
    :func:`first_page`)."""
    return f"SELECT rowid FROM {index} WHERE {index} MATCH :fts ORDER BY rowid"


def first_page(conn: sqlite3.Connection, table: str, sources: list[str], check: str,
               params: dict[str, Any], offset: int, limit: int) -> list[int] | None:
    """The rowids of the matches ``offset`` to ``offset + limit`` of ``table`` in created
    order, where ``sources`` (each selects rowids in rowid order with ``params``: what an
    index offers, :func:`offered_by`, or a walk of a table) offer every matching row
    but those out of order or waiting, and ``check`` (it selects the rowid, created_at
    and id of the rows in ``:rowids``, a JSON list, that match) decides; None when more
    than :data:`LOOSE_MAX` rows are out of order or wait.

    The rows offered are checked in rowid order (that of their ``created_at``, but for
    the rows out of order), a batch at a time, until ``offset + limit`` match and one of
    a later second than the last of those: the matches before it are the first in
    created order of the rows in order. The rows out of order and those waiting are
    checked too, and the page is the first of both together."""
    kinds = _KINDS[table]
    loose = [r[0] for r in conn.execute(
        f"SELECT rid FROM search_disorder WHERE tbl = ? UNION SELECT rid FROM search_pending WHERE tbl IN "
        f"({', '.join('?' * len(kinds))}) LIMIT ?", (table, *kinds, LOOSE_MAX + 1))]
    if len(loose) > LOOSE_MAX:
        return None
    need = offset + limit
    if need == 0:
        return []

    def matching(rowids: list[int]) -> list[tuple[str, str, int]]:
        rows = conn.execute(check, {**params, "rowids": json.dumps(rowids)})
        return [(created_at, id_, rowid) for rowid, created_at, id_ in rows]

    in_order: list[tuple[str, str, int]] = []
    batch: list[int] = []
    size = need + 16  # most rows offered match: the first batch is about the page
    skip = set(loose)
    offered = _offered(conn, sources, params)
    try:
        for rowid in offered:
            if rowid in skip:
                continue
            batch.append(rowid)
            if len(batch) == size:
                in_order += matching(batch)
                if len(in_order) > need and max(in_order)[0] > sorted(in_order)[need - 1][0]:
                    break  # a later second than the page's last: nothing further comes before
                batch, size = [], min(size * 2, 4096) if len(in_order) < need else 64
        else:
            in_order += matching(batch) if batch else []
    finally:
        offered.close()
    found = sorted(in_order + (matching(loose) if loose else []))
    return [rowid for _, _, rowid in found[offset:need]]


def _offered(conn: sqlite3.Connection, sources: list[str], params: dict[str, Any]) -> Iterator[int]:
    """The rowids ``sources`` select, in rowid order, each once."""
    cursors = [conn.execute(sql, params) for sql in sources]
    try:
        last = None
        for rowid in heapq.merge(*((row[0] for row in cursor) for cursor in cursors)):
            if rowid != last:
                yield rowid
                last = rowid
    finally:  # a search that stops at its page leaves no statement running
        for cursor in cursors:
            cursor.close()


_TABLES = {"contacts_search": "contacts", "deals_search": "deals"}
#: What ``search_pending`` notes for each table's rows: a deal waits as ``deals`` (new,
#: for both its indexes) or as ``deal_people`` (its contacts changed).
_KINDS = {"contacts": ("contacts",), "deals": ("deals", "deal_people")}

#: Rowids of the contacts and deals the trigram indexes offer for ``:contacts_search``
#: and ``:deals_search`` (their queries), and of those written since the indexer last ran.
CONTACT_ROWIDS = ("SELECT rowid FROM contacts_search WHERE contacts_search MATCH :contacts_search "
                  "UNION ALL SELECT rid FROM search_pending WHERE tbl = 'contacts'")
DEAL_ROWIDS = ("SELECT rowid FROM deals_search WHERE deals_search MATCH :deals_search "
               "UNION ALL SELECT rid FROM search_pending WHERE tbl = 'deals'")
#: The columns of each index (migration 41).
_COLUMNS = {"contacts": "person, phone", "deals": "text"}


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
        columns = _COLUMNS[table]
        conn.execute(f"INSERT INTO {table}_search (rowid, {columns}) SELECT rowid, {columns} "
                     f"FROM {table}_search_text WHERE rowid IN ({marks})", rids)
        conn.execute(f"DELETE FROM search_pending WHERE tbl = ? AND rid IN ({marks})", (table, *rids))
        if table == "deals":
            _index_people(conn, rids)
        done += len(rids)
        if done >= limit:
            break
    if done < limit:
        rids = [r[0] for r in conn.execute(
            "SELECT rid FROM search_pending WHERE tbl = 'deal_people' ORDER BY rid LIMIT ?", (limit - done,))]
        if rids:
            _index_people(conn, rids)
            done += len(rids)
    return done


def _index_people(conn: sqlite3.Connection, rids: list[int]) -> None:
    """Index the contacts' names and emails of these deals again (``deal_people``,
    migration 70), and take them off the list of those waiting for it."""
    marks = ", ".join("?" * len(rids))
    conn.execute(f"DELETE FROM deal_people WHERE rowid IN ({marks})", rids)
    conn.execute(f"INSERT INTO deal_people (rowid, people) SELECT rowid, people FROM deal_people_text "
                 f"WHERE rowid IN ({marks}) AND people IS NOT NULL", rids)
    conn.execute(f"DELETE FROM search_pending WHERE tbl = 'deal_people' AND rid IN ({marks})", rids)
