"""Migration 41: search indexes for contacts and deals (SQLite FTS5, trigram tokenizer).

``q`` on the contacts and deals lists finds a piece of text anywhere in a field
(``LIKE '%q%'``, ASCII letters in either case). Without an index that reads every row
(seconds at a million). Each table gets an FTS5 index of trigrams over the text its
search looks at, which finds the rows that hold ``q``'s pieces as phrases (case folded);
the query then checks those few rows with the very ``LIKE`` conditions it always used,
so the answer is the same (see ``node.crm.store.search``). A contact's index has two
columns, ``person`` (names and email) and ``phone``: a deal's search looks at its
contacts' names and emails, not their phones.

The indexes keep the positions of the trigrams (``detail=full``: a phrase matches only
where its trigrams follow each other, so the index offers the rows that hold the text,
not every row that holds its trigrams somewhere) and no copy of the text: their content
is a view over the table, so that ``rebuild`` and ``integrity-check`` work. They are
keyed by the table's rowid. A row is indexed after it is written, not while: indexing a
referral's two contacts and its deal in the inbox's transaction cost some 400 µs
(``bench/inbox_stages.py``). So an insert only notes the row in ``search_pending``, and
``node.crm.indexing`` indexes what is noted, a batch at a time, off the write path; a
search looks at the noted rows as well as at the index. Triggers keep what is indexed in
step: an update of an indexed row removes its old text (which the trigger computes
exactly as the view does) and indexes the new; a delete removes it, or takes a noted row
off the list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

#: The columns of each index and the text of each (``{r}`` is ``new`` or ``old`` in a
#: trigger, the table itself in the view). A contact's names are joined by a space and its
#: email follows on a line of its own.
CONTACT_COLUMNS = {
    "person": ("coalesce({r}.first_name, '') || ' ' || coalesce({r}.last_name, '') || char(10) || "
               "coalesce({r}.email, '')"),
    "phone": "coalesce({r}.phone, '')",
}
DEAL_COLUMNS = {"text": "{r}.title || char(10) || {r}.summary || char(10) || {r}.source"}


def _index(table: str, columns: dict[str, str], watched: str) -> str:
    name = f"{table}_search"
    names = ", ".join(columns)

    def values(r: str) -> str:
        return ", ".join(text.format(r=r) for text in columns.values())

    pending = f"EXISTS (SELECT 1 FROM search_pending WHERE tbl = '{table}' AND rid = old.rowid)"
    return f"""
        CREATE VIEW {name}_text AS SELECT rowid, {", ".join(f"{t.format(r=table)} AS {c}" for c, t in columns.items())}
            FROM {table};
        CREATE VIRTUAL TABLE {name} USING fts5(
            {names}, content='{name}_text', content_rowid='rowid', tokenize='trigram', detail='full');
        CREATE TRIGGER {name}_insert AFTER INSERT ON {table} BEGIN
            INSERT OR IGNORE INTO search_pending (tbl, rid) VALUES ('{table}', new.rowid);
        END;
        CREATE TRIGGER {name}_delete AFTER DELETE ON {table} BEGIN
            INSERT INTO {name} ({name}, rowid, {names}) SELECT 'delete', old.rowid, {values("old")} WHERE NOT {pending};
            DELETE FROM search_pending WHERE tbl = '{table}' AND rid = old.rowid;
        END;
        CREATE TRIGGER {name}_update AFTER UPDATE OF {watched} ON {table} WHEN NOT {pending} BEGIN
            INSERT INTO {name} ({name}, rowid, {names}) VALUES ('delete', old.rowid, {values("old")});
            INSERT INTO {name} (rowid, {names}) VALUES (new.rowid, {values("new")});
        END;
        INSERT INTO {name} ({name}) VALUES ('rebuild');
    """


def up(db: sqlite_utils.Database) -> None:
    db.executescript(
        "CREATE TABLE search_pending (tbl TEXT NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (tbl, rid)) WITHOUT ROWID;"
        + _index("contacts", CONTACT_COLUMNS, "first_name, last_name, email, phone")
        + _index("deals", DEAL_COLUMNS, "title, summary, source")
    )
