"""A search reads its page in created order from the trigram indexes (``search.first_page``,
migration 70): the same rows as plain ``LIKE``, in the same order, page after page, with
rows written out of created order and rows still waiting for the indexer mixed in; it
reads about a page of the rows offered, however many match; a deal's contacts' names
are followed as they change; and too many loose rows leave the search to the old ways."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

from node.crm import store
from node.crm.models import ContactIn, ContactPatch, DealIn
from node.crm.store import search
from node.storage.db import Database
from node.storage.migrations import MIGRATIONS, load
from node.storage.sqlite import connect, migrate

from .conftest import NOW, Brokerage, seed
from .test_crm_search import expected_contacts, expected_deals, index_all


def fill(conn: sqlite3.Connection, org: Brokerage, rows: int, *, late_every: int = 0, per_second: int = 3) -> None:
    """``rows`` contacts named Okafor (every fourth Okafor-Reid) and a deal for each, in
    created order but for every ``late_every``-th, written dated a day before the rest."""
    for i in range(rows):
        when = NOW + timedelta(seconds=i // per_second)  # a second's rows: ids in any order
        if late_every and i % late_every == late_every - 1:
            when = NOW - timedelta(days=1, seconds=i)
        last = "Okafor-Reid" if i % 4 == 0 else "Okafor"
        contact = store.create_contact(conn, ContactIn(first_name=f"Ada{i}", last_name=last), now=when)
        store.create_deal(conn, DealIn.model_validate({
            "title": f"Purchase {i}" if i % 5 else f"Okafor family purchase {i}",
            "workflow_id": org.home.id, "stage_id": org.home.stages[i % 3].id,
            "contacts": [{"contact_id": contact.id}]}), now=when)


def pages(conn: sqlite3.Connection, q: str, size: int, **filters: str) -> tuple[list[str], list[str]]:
    """Every page of ``q``'s contacts and deals, one after the other, and their ids."""
    contacts: list[str] = []
    deals: list[str] = []
    offset = 0
    while True:
        got_c = [c.id for c in store.list_contacts(conn, q=q, limit=size, offset=offset)] if not filters else []
        got_d = [d.id for d in store.list_deals(conn, q=q, limit=size, offset=offset, **filters)]
        contacts += got_c
        deals += got_d
        if len(got_c) < size and len(got_d) < size:
            return contacts, deals
        offset += size


def loose(conn: sqlite3.Connection, table: str) -> int:
    return conn.execute("SELECT count(*) FROM search_disorder WHERE tbl = ?", (table,)).fetchone()[0]


def out_of_order(conn: sqlite3.Connection, table: str) -> set[int]:
    """The rows created before a row of lower rowid (none deleted)."""
    late, highest = set(), ""
    for rowid, created_at in conn.execute(f"SELECT rowid, created_at FROM {table} ORDER BY rowid"):
        if created_at < highest:
            late.add(rowid)
        else:
            highest = created_at
    return late


def noted(conn: sqlite3.Connection, table: str) -> set[int]:
    return {r[0] for r in conn.execute("SELECT rid FROM search_disorder WHERE tbl = ?", (table,))}


def test_pages_in_order_across_batches_with_rows_out_of_order_and_waiting(db: Database, org: Brokerage) -> None:
    db.run(lambda conn: fill(conn, org, 600, late_every=37))
    for table in ("contacts", "deals"):  # the late ones, only them
        late = db.run(lambda conn, t=table: out_of_order(conn, t))
        assert db.run(lambda conn, t=table: noted(conn, t)) == late and len(late) == 600 // 37

    def check(conn: sqlite3.Connection) -> None:
        for q in ("okafor", "OKAFOR-reid", "ada1", "ada59", "kafor-r", "nobody here", "a5", "9", "r-", "zz", "y f"):
            want_c, want_d = expected_contacts(conn, q), expected_deals(conn, q)
            for size in (1, 7, 16, 100):  # pages that end inside and across the walk's batches
                assert pages(conn, q, size) == (want_c, want_d), (q, size)
            assert [c.id for c in store.list_contacts(conn, q=q, limit=50, offset=90)] == want_c[90:140]
            stage = org.home.stages[1].id
            staged = {r[0] for r in conn.execute("SELECT id FROM deals WHERE stage_id = ?", (stage,))}
            assert pages(conn, q, 13, stage_id=stage)[1] == [d for d in want_d if d in staged]
        # the late rows come first: they are the oldest
        late = [c.id for c in store.list_contacts(conn, q="okafor", limit=3)]
        assert [c.created_at < NOW.isoformat() for c in store.list_contacts(conn, q="okafor", limit=3)] == [True] * 3
        assert late == expected_contacts(conn, "okafor")[:3]

    db.run(check)  # every row waits for the indexer
    db.run(lambda conn: index_all(conn, leave=250))  # the latest wait
    db.run(check)
    db.run(index_all)
    db.run(check)


def test_a_page_reads_about_a_page_however_many_match(db: Database, org: Brokerage) -> None:
    db.run(lambda conn: fill(conn, org, 1500, per_second=1))
    db.run(index_all)
    assert db.run(lambda conn: noted(conn, "contacts") | noted(conn, "deals")) == set()
    checked: list[int] = []

    def trace(sql: str) -> None:  # the rows each check of first_page was given
        if "json_each(" in sql and "created_at, d.id" in sql.replace("SELECT rowid", "SELECT d.rowid").replace(
                "created_at, id", "created_at, d.id") and "'[" in sql:
            checked.append(len(json.loads(sql[sql.index("'[") + 1:sql.index("]'") + 1])))

    def search_page(conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(trace)
        try:
            got_c = [c.id for c in store.list_contacts(conn, q="okafor", limit=100)]
            got_d = [d.id for d in store.list_deals(conn, q="okafor", limit=100)]
        finally:
            conn.set_trace_callback(None)
        assert got_c == expected_contacts(conn, "okafor")[:100]
        assert got_d == expected_deals(conn, "okafor")[:100]

    db.run(search_page)
    # 1,500 contacts and deals match; each search checked one batch of the page and a few
    assert checked == [116, 116], checked


def test_a_deals_contacts_are_followed_as_they_change(db: Database, org: Brokerage) -> None:
    def change(conn: sqlite3.Connection, indexed_first: bool, x: str) -> None:
        ana = store.create_contact(conn, ContactIn(first_name="Ana", last_name=f"Quispe{x}", email=f"ana.{x}@x.example"),
                                   now=NOW)
        ben = store.create_contact(conn, ContactIn(first_name="Ben", last_name=f"Tane{x}"), now=NOW)
        deal = store.create_deal(conn, DealIn.model_validate({
            "title": f"Loan {x}", "workflow_id": org.home.id, "stage_id": org.home.stages[0].id,
            "contacts": [{"contact_id": ana.id}]}), now=NOW)

        def finds(q: str) -> list[str]:
            got = [d.id for d in store.list_deals(conn, q=q, limit=10)]
            assert got == expected_deals(conn, q)
            return got

        def settle() -> None:
            if indexed_first:
                index_all(conn)

        settle()
        assert finds(f"quispe{x}") == [deal.id] and finds(f"ana.{x}@") == [deal.id] and finds(f"tane{x}") == []
        store.update_contact(conn, ana.id, ContactPatch(last_name=f"Mamani{x}"), now=NOW)
        assert finds(f"quispe{x}") == [] and finds(f"mamani{x}") == [deal.id]
        settle()
        assert finds(f"quispe{x}") == [] and finds(f"mamani{x}") == [deal.id]
        store.attach_contact(conn, deal.id, ben.id, now=NOW)
        assert finds(f"tane{x}") == [deal.id] and finds(f"ana mamani{x}") == [deal.id]
        settle()
        store.detach_contact(conn, deal.id, ana.id, now=NOW)
        assert finds(f"mamani{x}") == [] and finds(f"tane{x}") == [deal.id]
        settle()
        assert finds(f"mamani{x}") == [] and finds(f"tane{x}") == [deal.id]
        conn.execute("DELETE FROM deal_contacts WHERE deal_id = ?", (deal.id,))
        conn.execute("DELETE FROM deals WHERE id = ?", (deal.id,))
        assert finds(f"tane{x}") == []
        index_all(conn)
        assert conn.execute("SELECT count(*) FROM search_pending").fetchone()[0] == 0
        assert finds(f"tane{x}") == []
        conn.execute("INSERT INTO deal_people (deal_people) VALUES ('integrity-check')")
        held = {r[0] for r in conn.execute("SELECT rowid FROM deal_people")}
        assert held == {r[0] for r in conn.execute("SELECT rowid FROM deal_people_text WHERE people IS NOT NULL")}
        for rowid, people in conn.execute("SELECT rowid, people FROM deal_people"):  # what each deal holds now
            assert conn.execute("SELECT people FROM deal_people_text WHERE rowid = ?", (rowid,)).fetchone()[0] == people

    db.run(lambda conn: change(conn, indexed_first=False, x="q"))
    db.run(lambda conn: change(conn, indexed_first=True, x="z"))


def test_a_row_whose_time_changes_is_out_of_order(db: Database, org: Brokerage) -> None:
    def run(conn: sqlite3.Connection) -> None:
        fill(conn, org, 30, per_second=1)
        index_all(conn)
        assert loose(conn, "contacts") == 0
        first = conn.execute("SELECT id FROM contacts ORDER BY rowid LIMIT 1").fetchone()[0]
        conn.execute("UPDATE contacts SET created_at = '2030-01-01T00:00:00Z' WHERE id = ?", (first,))
        assert loose(conn, "contacts") == 1
        got = [c.id for c in store.list_contacts(conn, q="okafor", limit=100)]
        assert got == expected_contacts(conn, "okafor") and got[-1] == first
        conn.execute("DELETE FROM deal_contacts WHERE contact_id = ?", (first,))
        conn.execute("DELETE FROM contacts WHERE id = ?", (first,))
        assert loose(conn, "contacts") == 0

    db.run(run)


def test_too_many_loose_rows_leave_the_search_to_the_old_ways(db: Database, org: Brokerage) -> None:
    def run(conn: sqlite3.Connection) -> None:
        conn.executemany(  # an import of old rows, newest first: all but the first out of order
            "INSERT INTO contacts (id, first_name, last_name, created_at, updated_at) VALUES (?, 'Old', 'Row', ?, ?)",
            [(f"ct_old{i:06d}", f"2020-01-01T{(n - i) // 3600:02d}:{(n - i) // 60 % 60:02d}:{(n - i) % 60:02d}Z",
              "2020-01-01T00:00:00Z") for n in [search.LOOSE_MAX + 60] for i in range(n)])
        index_all(conn)
        assert loose(conn, "contacts") > search.LOOSE_MAX
        assert search.first_page(conn, "contacts", [search.offered_by("contacts_search")], "SELECT 1", {}, 0, 10) is None
        want = expected_contacts(conn, "old row")
        assert [c.id for c in store.list_contacts(conn, q="old row", limit=50, offset=20)] == want[20:70]

    db.run(run)


def test_migration_70_notes_what_a_node_already_holds(tmp_path) -> None:
    conn = connect(tmp_path / "old.db")
    for version, _, module in MIGRATIONS:  # a database as it was before migration 70
        if version < 70:
            load(module)(__import__("sqlite_utils").Database(conn))
            conn.execute(f"PRAGMA user_version={version}")
    org = seed(conn)
    ids = {}
    for first, at in (("Bo", 1), ("Cy", 1), ("Di", -3600), ("Ed", 2)):  # Cy and Di: before rows written earlier
        contact = store.create_contact(conn, ContactIn(first_name=first, last_name="Ngata"), now=NOW + timedelta(seconds=at))
        ids[first] = contact.id
        store.create_deal(conn, DealIn.model_validate({
            "title": f"Loan {first}", "workflow_id": org.home.id, "stage_id": org.home.stages[0].id,
            "contacts": [{"contact_id": contact.id}]}), now=NOW + timedelta(seconds=at))
    assert migrate(conn) == MIGRATIONS[-1][0]
    want = expected_contacts(conn, "ngata")
    assert len(want) == 4
    late = {r[0] for r in conn.execute(
        "SELECT c.id FROM search_disorder o JOIN contacts c ON c.rowid = o.rid WHERE o.tbl = 'contacts'")}
    assert late == {ids["Di"]}  # not Cy, of Bo's second
    assert [c.id for c in store.list_contacts(conn, q="ngata", limit=10)] == want
    assert [c.id for c in store.list_contacts(conn, q="ngata", limit=2, offset=1)] == want[1:3]
    assert conn.execute("SELECT count(*) FROM deal_people").fetchone()[0] == 4  # the deals' contacts indexed
    for _ in range(2):  # as the rows wait for the indexer, and once indexed
        assert [d.id for d in store.list_deals(conn, q="ngata", limit=10)] == expected_deals(conn, "ngata")
        assert [d.id for d in store.list_deals(conn, q="ngata", limit=2, offset=2)] == expected_deals(conn, "ngata")[2:]
        index_all(conn)
    assert len(expected_deals(conn, "ngata")) == 4
    conn.execute("INSERT INTO deal_people (deal_people) VALUES ('integrity-check')")
    conn.close()
