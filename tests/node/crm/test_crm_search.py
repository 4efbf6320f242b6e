"""Searching contacts and deals through the trigram indexes (migration 41) gives exactly
the rows the plain ``LIKE`` conditions give, whichever way the search goes (index, or a
walk of the table), whether the rows are indexed yet or still wait for the indexer, and
the indexes follow every insert, update, delete and import."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Iterator
from datetime import timedelta

import pytest
from conftest import wait_for

from node.crm import store
from node.crm.models import ContactIn, ContactPatch, DealIn, DealPatch
from node.crm.store import search
from node.crm.store.sql import _like
from node.storage.db import Database
from node.storage.migrations import MIGRATIONS, load
from node.storage.sqlite import connect, migrate

from .conftest import NOW, Brokerage, seed

LIKE = "LIKE :q ESCAPE '\\'"


def _person(t: str) -> str:
    return (f"{t}first_name {LIKE} OR {t}last_name {LIKE} OR (coalesce({t}first_name, '') || ' ' || "
            f"coalesce({t}last_name, '')) {LIKE} OR {t}email {LIKE}")


#: The conditions the lists have always used, with no index: the answer to match. A deal's
#: search looks at its contacts' names and emails, not their phones.
CONTACT_MATCH = _person("") + f" OR phone {LIKE}"
DEAL_MATCH = (f"d.title {LIKE} OR d.summary {LIKE} OR d.source {LIKE} OR EXISTS (SELECT 1 FROM deal_contacts dc "
              f"JOIN contacts c ON c.id = dc.contact_id WHERE dc.deal_id = d.id AND ({_person('c.')}))")

FIRST = ["Jordan", "Sam", "Zoë", "Émile", "O'Brien", "Ann_Marie", "50%", "Lee", "Li", "Ngaio", None]
LAST = ["Citizen", "Nguyen", "Smith-Jones", "de la Cruz", "Ōtaki", "Lee", "Xu", None]


def many(conn: sqlite3.Connection, org: Brokerage, rows: int, rng: random.Random) -> None:
    """``rows`` contacts and as many deals (one contact each, a co-applicant on every
    third), with names, emails and phones drawn from small lists, so that most terms
    match many rows and some match few."""
    previous = ""
    for i in range(rows):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{(first or 'x').lower()}.{i}@{rng.choice(['example.com', 'mail.example'])}"
        contact = store.create_contact(
            conn, ContactIn(first_name=first, last_name=last, email=email if i % 5 else None,
                            phone=f"+61 4{i % 100:02d} {i:06d}" if i % 3 else None),
            now=NOW + timedelta(seconds=i % 997))
        contacts = [{"contact_id": contact.id}]
        if i % 3 == 0 and i:
            contacts.append({"contact_id": previous, "role": "co-applicant"})
        previous = contact.id
        stage = org.home.stages[i % 3]
        store.create_deal(conn, DealIn.model_validate({
            "title": f"{rng.choice(['Purchase', 'Refinance', 'Top-up'])} at {i % 50} {rng.choice(['George St', 'Wattle Cr'])}",
            "summary": rng.choice(["", "First home buyer", "Investor, 20% deposit", "Needs bridging_finance"]),
            "source": rng.choice(["", "Website", "Referral from Harbour Realty"]),
            "workflow_id": org.home.id, "stage_id": stage.id, "contacts": contacts}), now=NOW + timedelta(seconds=i % 997))


def expected_contacts(conn: sqlite3.Connection, q: str) -> list[str]:
    return [r[0] for r in conn.execute(f"SELECT id FROM contacts WHERE {CONTACT_MATCH} ORDER BY created_at, id",
                                       {"q": _like(q)})]


def expected_deals(conn: sqlite3.Connection, q: str) -> list[str]:
    return [r[0] for r in conn.execute(f"SELECT d.id FROM deals d WHERE {DEAL_MATCH} ORDER BY d.created_at, d.id",
                                       {"q": _like(q)})]


TERMS = ["nguyen", "NGUYEN", "ordan ci", "Zoë", "zoË", "émile", "ÉMILE", "Ōtaki", "ann_m", "ann%", "50%", "_", "%",
         "li", "Lee", "e", "xu", "ee", "mail.example", "@example.com", ".17@", "+61 405", "0001", "Wattle",
         "bridging_f", "ing_", "Harbour", "harbour realty", "nothing like this", "Smith-J", "de la", "a c",
         "o'brien", "'", "\\", "12 George", "Refinance at 3 "]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = Database(tmp_path_factory.mktemp("search") / "node.db")
    org = db.run(seed)
    db.run(lambda conn: many(conn, org, 1200, random.Random(7)))
    yield db
    db.close_sync()


def index_all(conn: sqlite3.Connection, leave: int = 0) -> None:
    """Run the indexer until only ``leave`` rows wait (the latest)."""
    waiting = conn.execute("SELECT count(*) FROM search_pending").fetchone()[0]
    while waiting > leave:
        waiting -= search.index_pending(conn, min(500, waiting - leave))


def test_a_search_finds_exactly_what_like_finds(big: Database) -> None:
    assert big.run(lambda conn: conn.execute("SELECT count(*) FROM search_pending").fetchone()[0]) == 2400
    for q in TERMS:  # nothing indexed yet: every row is offered as waiting
        big.run(lambda conn, q=q: check_term(conn, q))
    big.run(lambda conn: index_all(conn, leave=150))  # the most recent still wait
    for q in TERMS:
        big.run(lambda conn, q=q: check_term(conn, q))
    big.run(index_all)
    for q in TERMS:
        big.run(lambda conn, q=q: check_term(conn, q))


def check_term(conn: sqlite3.Connection, q: str) -> None:
    want = expected_contacts(conn, q)
    assert [c.id for c in store.list_contacts(conn, q=q)] == want
    assert [c.id for c in store.list_contacts(conn, q=q, limit=7, offset=3)] == want[3:10]
    want_deals = expected_deals(conn, q)
    assert [d.id for d in store.list_deals(conn, q=q)] == want_deals
    stage = conn.execute("SELECT stage_id FROM deals ORDER BY rowid LIMIT 1").fetchone()[0]
    in_stage = [d.id for d in store.list_deals(conn, stage_id=stage)]
    assert [d.id for d in store.list_deals(conn, q=q, stage_id=stage)] == [d for d in want_deals if d in in_stage]


def test_both_ways_are_taken_and_agree(big: Database, db: Database, org: Brokerage) -> None:
    """A term the index offers few rows for is read through it; one it offers more than
    DIRECT_MAX rows for walks the table; both give the LIKE answer."""
    def plans(conn: sqlite3.Connection) -> None:
        assert search.plan(conn, "Ōtaki", {"contacts_search": None}).queries == {"contacts_search": '"Ōtaki"'}
        assert search.plan(conn, "xu", {"contacts_search": None}).queries is None  # too short to index
        assert search.plan(conn, "50%", {"contacts_search": None}).queries == {"contacts_search": '"50%"'}
        assert search.plan(conn, 'a "b"', {"contacts_search": "person"}).queries == {
            "contacts_search": 'person : "a ""b"""'}
    big.run(plans)
    db.run(lambda conn: conn.executemany(
        "INSERT INTO contacts (id, first_name, last_name, created_at, updated_at) VALUES (?, 'Walker', ?, ?, ?)",
        [(f"ct_walk{i:06d}", f"W{i}", f"2026-11-23T1{i % 10}:00:00Z", "2026-11-23T10:00:00Z")
         for i in range(search.DIRECT_MAX + 5)]))
    db.run(lambda conn: conn.executemany(
        "INSERT INTO deals (id, title, workflow_id, stage_id, origin, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, 'local', ?, ?)",
        [(f"deal_walk{i:06d}", f"Walkway {i}", org.home.id, org.home.stages[i % 3].id,
          f"2026-11-23T1{i % 10}:00:00Z", "2026-11-23T10:00:00Z") for i in range(search.DIRECT_MAX + 5)]))
    db.run(index_all)

    def walk(conn: sqlite3.Connection) -> None:
        assert search.plan(conn, "walkway", {"deals_search": None, "contacts_search": "person"}).many
        for q in ("walkway", "walkway 99", "walker"):  # "walker": no deal has such a contact
            want = expected_deals(conn, q)
            assert [d.id for d in store.list_deals(conn, q=q, limit=50, offset=5)] == want[5:55]
            staged = {r[0] for r in conn.execute("SELECT id FROM deals WHERE stage_id = ?", (org.home.stages[1].id,))}
            in_stage = [d.id for d in store.list_deals(conn, q=q, stage_id=org.home.stages[1].id, limit=20)]
            assert in_stage == [d for d in want if d in staged][:20]
        assert search.plan(conn, "walker", {"contacts_search": None}).many  # more than DIRECT_MAX: walk
        assert not search.plan(conn, "walker w999", {"contacts_search": None}).many
        for q in ("walker", "walker w999", "Walker W1000", "w12"):
            want = expected_contacts(conn, q)
            assert want
            assert [c.id for c in store.list_contacts(conn, q=q, limit=50, offset=5)] == want[5:55]
    db.run(walk)
    # Many matches that all come after the first WINDOW rows: the walk gives up, and the
    # rows the index offers are read and sorted instead.
    db.run(lambda conn: conn.executemany(
        "INSERT INTO contacts (id, first_name, last_name, created_at, updated_at) VALUES (?, 'Early', 'Bird', ?, ?)",
        [(f"ct_early{i:06d}", "2026-11-23T20:00:00Z", "2026-11-23T20:00:00Z") for i in range(search.WINDOW)]))
    db.run(lambda conn: conn.executemany(
        "INSERT INTO contacts (id, first_name, last_name, created_at, updated_at) VALUES (?, ?, 'Latecomer', ?, ?)",
        [(f"ct_late{i:06d}", f"L{i}", f"2026-11-24T0{i % 10}:00:00Z", "2026-11-24T10:00:00Z")
         for i in range(search.DIRECT_MAX + 5)]))
    db.run(index_all)

    def late(conn: sqlite3.Connection) -> None:
        walked = conn.execute("SELECT count(*) FROM contacts WHERE created_at < '2026-11-24'").fetchone()[0]
        assert walked > search.WINDOW
        assert search.plan(conn, "latecomer", {"contacts_search": None}).many
        want = expected_contacts(conn, "latecomer")
        assert len(want) == search.DIRECT_MAX + 5
        assert [c.id for c in store.list_contacts(conn, q="latecomer", limit=100, offset=7)] == want[7:107]
    db.run(late)


def test_the_indexes_follow_updates_deletes_and_imports(db: Database, org: Brokerage) -> None:
    def change(conn: sqlite3.Connection, indexed_first: bool, x: str) -> None:
        jo = store.create_contact(conn, ContactIn(first_name="Jo", last_name=f"Smithers{x}"), now=NOW)
        deal = store.create_deal(conn, DealIn(title=f"Old title {x}", workflow_id=org.home.id,
                                              stage_id=org.home.stages[0].id), now=NOW)
        if indexed_first:
            index_all(conn)
        store.update_contact(conn, jo.id, ContactPatch(last_name=f"Blackwood{x}"), now=NOW)
        store.update_deal(conn, deal.id, DealPatch(title=f"Harbourside purchase {x}"), now=NOW)
        for _ in range(2):  # as they wait, and once indexed
            assert store.list_contacts(conn, q=f"smithers{x}") == []
            assert [c.id for c in store.list_contacts(conn, q=f"blackwood{x}")] == [jo.id]
            assert store.list_deals(conn, q=f"old title {x}") == []
            assert [d.id for d in store.list_deals(conn, q=f"harbourside purchase {x}")] == [deal.id]
            index_all(conn)
            assert conn.execute("SELECT count(*) FROM search_pending").fetchone()[0] == 0
            assert search.offered(conn, "contacts_search", search.index_query(f"smithers{x}"), cap=9) == 0
        store.attach_contact(conn, deal.id, jo.id, now=NOW)
        assert [d.id for d in store.list_deals(conn, q=f"blackwood{x}")] == [deal.id]  # through its contact
        conn.execute("DELETE FROM deal_contacts WHERE deal_id = ?", (deal.id,))
        conn.execute("DELETE FROM deals WHERE id = ?", (deal.id,))
        gone = store.create_contact(conn, ContactIn(first_name=f"Temporary{x}"), now=NOW)
        conn.execute("DELETE FROM contacts WHERE id = ?", (gone.id,))  # deleted while it waited
        assert store.list_deals(conn, q=f"harbourside purchase {x}") == []
        assert store.list_contacts(conn, q=f"temporary{x}") == []
        for index in ("contacts_search", "deals_search"):  # the index holds just what the tables do
            conn.execute(f"INSERT INTO {index} ({index}) VALUES ('integrity-check')")

    db.run(lambda conn: change(conn, indexed_first=False, x="q"))
    db.run(lambda conn: change(conn, indexed_first=True, x="z"))


def test_migration_41_indexes_what_a_node_already_holds(tmp_path) -> None:
    conn = connect(tmp_path / "old.db")
    for version, _, module in MIGRATIONS:  # a database as it was before migration 40
        if version < 40:
            load(module)(__import__("sqlite_utils").Database(conn))
            conn.execute(f"PRAGMA user_version={version}")
    conn.execute("INSERT INTO contacts (id, first_name, last_name, created_at, updated_at)"
                 " VALUES ('ct_1', 'Aroha', 'Ngata', '2026-11-23T10:00:00Z', '2026-11-23T10:00:00Z')")
    assert migrate(conn) == MIGRATIONS[-1][0]
    assert [c.id for c in store.list_contacts(conn, q="ngata")] == ["ct_1"]
    assert conn.execute("SELECT count(*) FROM search_pending").fetchone()[0] == 0  # indexed by the migration
    assert search.offered(conn, "contacts_search", search.index_query("ngata"), cap=10) == 1
    conn.close()


async def test_the_indexer_waits_for_a_quiet_moment_and_searches_stay_exact(node_factory) -> None:
    n = await node_factory("Indexer")
    node = n.node

    async def waiting() -> int:
        return await node.db.read(lambda conn: search.waiting(conn, cap=1000))

    # While writes keep coming (one every 0.1 s, the indexer waits for 0.5 s of quiet), the
    # rows wait; a search finds them all the same.
    counts = []
    for i in range(15):
        await n.api("POST", "/api/v1/contacts", {"first_name": "Marama", "last_name": f"Tautahi{i:02d}"})
        counts.append(await waiting())
        await asyncio.sleep(0.1)
    assert counts == sorted(counts) and counts[-1] >= 15, counts  # never indexed meanwhile
    found = (await n.api("GET", "/api/v1/contacts?q=tautahi0"))["contacts"]
    assert [c["last_name"] for c in found] == [f"Tautahi0{i}" for i in range(10)]

    async def indexed() -> bool:  # by the node's own indexer, once no write has come for a while
        return await waiting() == 0

    await wait_for(indexed, within_s=5)
    assert node.search.indexed >= 15
    found = (await n.api("GET", "/api/v1/contacts?q=tautahi0"))["contacts"]
    assert [c["last_name"] for c in found] == [f"Tautahi0{i}" for i in range(10)]
