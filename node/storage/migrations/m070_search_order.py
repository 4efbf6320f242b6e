"""Migration 70: what lets a search read its first page in the lists' order, however many
rows match (see ``node.crm.store.search``).

The lists are in created order, ``(created_at, id)``; the trigram indexes of migration 41
give their rows in rowid order. The two nearly agree: a row is written when it is
created, and a new row takes a rowid above every row there is. ``search_disorder`` notes
the rows for which they do not: a row written with a ``created_at`` before some row
already there (an import, a restore of old rows, a clock set back), or whose
``created_at`` changed. Every other row has a ``created_at`` no earlier than any row of
lower rowid (it had when it was written, and those of lower rowid were all there then),
so the index gives them in the order of their ``created_at`` (those of one second in
any order: their ids are random after the time), and a search can stop at its page
once it holds the rest of that second's.

A deal's search also looks at its contacts' names and emails, which the deals' index
does not hold. ``deal_people`` holds them, a deal at a time (keyed by the deal's rowid):
an FTS5 table of its own content, so that a deal's row can be replaced without knowing
what was indexed. It is kept as migration 41 keeps its indexes, off the write path: a
change of a deal's contacts, or of a contact's names or email, notes the deal in
``search_pending`` as ``deal_people``, and the indexer indexes it again (a new deal is
noted as ``deals`` and indexed in both). Until then the search looks at the noted deals
one by one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

#: A deal's contacts' names and emails, as ``deal_people`` indexes them: each contact's
#: names joined by a space, its email on the next line, a line between contacts.
PEOPLE = ("SELECT group_concat(coalesce(c.first_name, '') || ' ' || coalesce(c.last_name, '') || char(10) || "
          "coalesce(c.email, ''), char(10)) FROM deal_contacts dc JOIN contacts c ON c.id = dc.contact_id "
          "WHERE dc.deal_id = {deal}")


def _order(table: str) -> str:
    later = f"EXISTS (SELECT 1 FROM {table} WHERE created_at > new.created_at)"
    return f"""
        CREATE TRIGGER {table}_order_insert AFTER INSERT ON {table} WHEN {later} BEGIN
            INSERT OR IGNORE INTO search_disorder (tbl, rid) VALUES ('{table}', new.rowid);
        END;
        CREATE TRIGGER {table}_order_update AFTER UPDATE OF created_at ON {table} BEGIN
            INSERT OR IGNORE INTO search_disorder (tbl, rid) VALUES ('{table}', new.rowid);
        END;
        CREATE TRIGGER {table}_order_delete AFTER DELETE ON {table} BEGIN
            DELETE FROM search_disorder WHERE tbl = '{table}' AND rid = old.rowid;
        END;
    """


#: A deal noted as new (``deals``) is indexed in both: it need not be noted again.
_NEW = "EXISTS (SELECT 1 FROM search_pending p WHERE p.tbl = 'deals' AND p.rid = d.rowid)"


def _note(deal: str) -> str:
    return (f"INSERT OR IGNORE INTO search_pending (tbl, rid) SELECT 'deal_people', d.rowid FROM deals d "
            f"WHERE d.id = {deal} AND NOT {_NEW};")


def up(db: sqlite_utils.Database) -> None:
    conn = db.conn
    db.executescript(f"""
        CREATE TABLE search_disorder (tbl TEXT NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (tbl, rid)) WITHOUT ROWID;
        {_order("contacts")}
        {_order("deals")}
        CREATE VIEW deal_people_text AS SELECT d.rowid AS rowid, ({PEOPLE.format(deal="d.id")}) AS people FROM deals d;
        CREATE VIRTUAL TABLE deal_people USING fts5(people, tokenize='trigram', detail='full');
        CREATE TRIGGER deal_people_link AFTER INSERT ON deal_contacts BEGIN {_note("new.deal_id")} END;
        CREATE TRIGGER deal_people_unlink AFTER DELETE ON deal_contacts BEGIN {_note("old.deal_id")} END;
        CREATE TRIGGER deal_people_relink AFTER UPDATE OF deal_id, contact_id ON deal_contacts BEGIN
            {_note("old.deal_id")} {_note("new.deal_id")}
        END;
        CREATE TRIGGER deal_people_contact AFTER UPDATE OF first_name, last_name, email ON contacts BEGIN
            INSERT OR IGNORE INTO search_pending (tbl, rid)
                SELECT 'deal_people', d.rowid FROM deal_contacts dc JOIN deals d ON d.id = dc.deal_id
                WHERE dc.contact_id = new.id AND NOT {_NEW};
        END;
        CREATE TRIGGER deal_people_delete AFTER DELETE ON deals BEGIN
            DELETE FROM deal_people WHERE rowid = old.rowid;
            DELETE FROM search_pending WHERE tbl = 'deal_people' AND rid = old.rowid;
        END;
        INSERT INTO deal_people (rowid, people) SELECT rowid, people FROM deal_people_text WHERE people IS NOT NULL;
    """)
    for table in ("contacts", "deals"):  # the rows already out of order, by rowid
        highest = ""
        late = []
        for rowid, created_at in conn.execute(f"SELECT rowid, created_at FROM {table} ORDER BY rowid"):
            if created_at < highest:
                late.append((table, rowid))
            else:
                highest = created_at
        conn.executemany("INSERT INTO search_disorder (tbl, rid) VALUES (?, ?)", late)
