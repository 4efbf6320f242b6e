"""Migration 41: search indexes for contacts and deals (SQLite FTS5, trigram tokenizer).

``q`` on the contacts and deals lists finds a piece of text anywhere in a field
(``LIKE '%q%'``, ASCII letters in either case). Without an index that reads every row
(seconds at a million). Each table gets an FTS5 index of trigrams over the text its
search looks at, which finds the rows that hold every trigram of ``q`` (case folded);
the query then checks those few rows with the very ``LIKE`` conditions it always used,
so the answer is the same (see ``node.crm.store.search``).

The indexes hold no copy of the text (``detail=none``, their content is a view over the
table, so that ``rebuild`` and ``integrity-check`` work) and are keyed by the table's
rowid. A row is indexed after it is written, not while: indexing a contact or deal costs
a hundred microseconds or more (every three characters of its text), too much for the
inbox's transaction (``bench/inbox_stages.py``). So an insert only notes the row in
``search_pending``, and ``node.crm.indexing`` indexes what is noted, a batch at a time,
off the write path; a search looks at the noted rows as well as at the index. Triggers
keep what is indexed in step: an update of an indexed row removes its old text (which
the trigger computes exactly as the view does) and indexes the new; a delete removes it,
or takes a noted row off the list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

#: The text of a contact and of a deal that their search looks at (``{r}`` is ``new`` or
#: ``old`` in a trigger, the table itself in the view). Fields are joined by a newline.
CONTACT_TEXT = ("coalesce({r}.first_name, '') || ' ' || coalesce({r}.last_name, '') || char(10) || "
                "coalesce({r}.email, '') || char(10) || coalesce({r}.phone, '')")
DEAL_TEXT = "{r}.title || char(10) || {r}.summary || char(10) || {r}.source"


def _index(table: str, text: str, columns: str) -> str:
    name = f"{table}_search"
    new, old = text.format(r="new"), text.format(r="old")
    pending = f"EXISTS (SELECT 1 FROM search_pending WHERE tbl = '{table}' AND rid = old.rowid)"
    return f"""
        CREATE VIEW {name}_text AS SELECT rowid, {text.format(r=table)} AS text FROM {table};
        CREATE VIRTUAL TABLE {name} USING fts5(
            text, content='{name}_text', content_rowid='rowid', tokenize='trigram', detail='none');
        CREATE TRIGGER {name}_insert AFTER INSERT ON {table} BEGIN
            INSERT OR IGNORE INTO search_pending (tbl, rid) VALUES ('{table}', new.rowid);
        END;
        CREATE TRIGGER {name}_delete AFTER DELETE ON {table} BEGIN
            INSERT INTO {name} ({name}, rowid, text) SELECT 'delete', old.rowid, {old} WHERE NOT {pending};
            DELETE FROM search_pending WHERE tbl = '{table}' AND rid = old.rowid;
        END;
        CREATE TRIGGER {name}_update AFTER UPDATE OF {columns} ON {table} WHEN NOT {pending} BEGIN
            INSERT INTO {name} ({name}, rowid, text) VALUES ('delete', old.rowid, {old});
            INSERT INTO {name} (rowid, text) VALUES (new.rowid, {new});
        END;
        INSERT INTO {name} ({name}) VALUES ('rebuild');
    """


def up(db: sqlite_utils.Database) -> None:
    db.executescript(
        "CREATE TABLE search_pending (tbl TEXT NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (tbl, rid)) WITHOUT ROWID;"
        + _index("contacts", CONTACT_TEXT, "first_name, last_name, email, phone")
        + _index("deals", DEAL_TEXT, "title, summary, source")
    )
