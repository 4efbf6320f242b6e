"""Migration 41: search indexes for contacts and deals (SQLite FTS5, trigram tokenizer).

``q`` on the contacts and deals lists finds a piece of text anywhere in a field
(``LIKE '%q%'``, ASCII letters in either case). Without an index that reads every row
(seconds at a million). Each table gets an FTS5 index of trigrams over the text its
search looks at, which finds the rows that hold every trigram of ``q`` (case folded);
the query then checks those few rows with the very ``LIKE`` conditions it always used,
so the answer is the same (see ``node.crm.store.search``).

The indexes hold no copy of the text (``detail=none``, their content is a view over the
table, so that ``rebuild`` and ``integrity-check`` work) and are keyed by the table's
rowid. Triggers keep them in step with every insert, update and delete; an update first
removes the old text, which the trigger computes exactly as the view does.
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
    return f"""
        CREATE VIEW {name}_text AS SELECT rowid, {text.format(r=table)} AS text FROM {table};
        CREATE VIRTUAL TABLE {name} USING fts5(
            text, content='{name}_text', content_rowid='rowid', tokenize='trigram', detail='none');
        CREATE TRIGGER {name}_insert AFTER INSERT ON {table} BEGIN
            INSERT INTO {name} (rowid, text) VALUES (new.rowid, {new});
        END;
        CREATE TRIGGER {name}_delete AFTER DELETE ON {table} BEGIN
            INSERT INTO {name} ({name}, rowid, text) VALUES ('delete', old.rowid, {old});
        END;
        CREATE TRIGGER {name}_update AFTER UPDATE OF {columns} ON {table} BEGIN
            INSERT INTO {name} ({name}, rowid, text) VALUES ('delete', old.rowid, {old});
            INSERT INTO {name} (rowid, text) VALUES (new.rowid, {new});
        END;
        INSERT INTO {name} ({name}) VALUES ('rebuild');
    """


def up(db: sqlite_utils.Database) -> None:
    db.executescript(
        _index("contacts", CONTACT_TEXT, "first_name, last_name, email, phone")
        + _index("deals", DEAL_TEXT, "title, summary, source")
    )
