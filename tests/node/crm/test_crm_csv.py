from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

import pytest

from node.crm import csv_io, store
from node.crm.csv_import import ERRORS_SHOWN, IDS_SHOWN, CsvImport, Kind
from node.crm.csv_stage import FOLDER
from node.crm.errors import CrmError, CsvImportError, RowError
from node.crm.models import Contact, ContactIn, Deal, DealIn, DealReferral
from node.crm.parsing import parse
from node.storage.db import Database

from .conftest import NOW, Brokerage, seed

PEER = "B" * 43


def fill(conn: sqlite3.Connection, org: Brokerage) -> None:
    """Data that exercises every column, including cells a spreadsheet would run."""
    jo = store.create_contact(
        conn,
        parse(ContactIn, {
            "first_name": "=HYPERLINK(\"http://evil.example\",\"x\")", "last_name": "Smith",
            "email": "jo@smith.example", "phone": "+61 400 000 000",
            "address": {"line1": "1 George St", "line2": "Level 2, Suite 3", "locality": "Sydney",
                        "region": "NSW", "postcode": "2000", "country": "AU"},
            "date_of_birth": "1990-02-28", "custom_fields": {"employer": "ACME, Inc.", "note": "'quoted"},
        }),
        now=NOW,
    )  # fmt: skip
    al = store.create_contact(conn, ContactIn(last_name="@Al", email="al@smith.example"), now=NOW)
    store.create_contact(conn, ContactIn(first_name="Kim", custom_fields={"vip": "yes"}), now=NOW)
    home, commercial = org.home, org.commercial
    store.create_deal(
        conn,
        parse(DealIn, {
            "title": "+1+1 refinance", "deal_type": "home-loan", "amount": "650000.50", "currency": "AUD",
            "workflow_id": home.id, "stage_id": home.stages[1].id, "owner_user_id": org.ann.id,
            "folder": "Inbox", "source": "-Website", "summary": "Line one\nline two, with \"quotes\"",
            "labels": ["hot", "=x"], "custom_fields": {"lender": "ANZ"},
            "contacts": [{"contact_id": jo.id}, {"contact_id": al.id, "role": "co-applicant"}],
        }),
        now=NOW,
    )  # fmt: skip
    store.create_deal(
        conn,
        DealIn(title="Fleet lease", workflow_id=commercial.id, stage_id=commercial.stages[0].id),
        now=NOW,
        referral=DealReferral(peer_node_id=PEER, referral_id="rfl_42"),
    )
    store.create_deal(
        conn,
        DealIn(title="Top-up", workflow_id=home.id, stage_id=home.stages[0].id, owner_user_id=org.bob.id,
               custom_fields={"broker code": "B7"}),
        now=NOW,
    )  # fmt: skip


def by_names(conn: sqlite3.Connection, deal: Deal) -> dict:
    """A deal with its workflow, stage and owner named, so deals of two databases compare."""
    workflow = store.get_workflow(conn, deal.workflow_id)
    stage = store.get_stage(conn, deal.stage_id)
    owner = store.get_user(conn, deal.owner_user_id).email if deal.owner_user_id else None
    data = deal.model_dump()
    data.update(workflow_id=workflow.name, stage_id=stage.name, owner_user_id=owner)
    return data


@pytest.fixture
def other_db(tmp_path: Path):
    database = Database(tmp_path / "other.db")
    yield database
    database.close_sync()


def test_round_trip_into_a_fresh_database(db: Database, org: Brokerage, other_db: Database) -> None:
    db.run(lambda c: fill(c, org))
    contacts_csv = db.run(csv_io.export_contacts_csv)
    deals_csv = db.run(csv_io.export_deals_csv)
    other_db.run(seed)  # same users and workflow names, different ids

    run_import(other_db, "contacts", contacts_csv)
    run_import(other_db, "deals", deals_csv)
    assert other_db.run(store.list_contacts) == db.run(store.list_contacts)
    assert len(db.run(store.list_contacts)) == 3
    ours = db.run(lambda c: [by_names(c, d) for d in store.list_deals(c)])
    theirs = other_db.run(lambda c: [by_names(c, d) for d in store.list_deals(c)])
    assert theirs == ours
    assert len(ours) == 3 and ours[0]["workflow_id"] == "Home loans"
    assert other_db.run(csv_io.export_contacts_csv) == contacts_csv
    assert other_db.run(csv_io.export_deals_csv) == deals_csv


def test_export_columns(db: Database, org: Brokerage) -> None:
    db.run(lambda c: fill(c, org))
    deals = list(csv.reader(io.StringIO(db.run(csv_io.export_deals_csv))))
    assert deals[0] == [*csv_io.DEAL_COLUMNS, "custom.broker code", "custom.lender"]
    first = dict(zip(deals[0], deals[1], strict=True))
    assert (first["workflow"], first["stage"], first["owner_email"]) == (
        "Home loans",
        "Lodged",
        "ann@broker.example",
    )
    contacts = db.run(lambda c: store.list_contacts(c))
    assert first["contacts"] == f"{contacts[0].id}:primary;{contacts[1].id}:co-applicant"
    assert (first["amount"], first["custom.lender"], first["custom.broker code"]) == (
        "650000.50",
        "ANZ",
        "",
    )
    referred = dict(zip(deals[0], deals[2], strict=True))
    assert (referred["origin"], referred["referral_peer_node_id"], referred["referral_id"]) == (
        "referral",
        PEER,
        "rfl_42",
    )
    header = next(csv.reader(io.StringIO(db.run(csv_io.export_contacts_csv))))
    assert header == [*csv_io.CONTACT_COLUMNS, "custom.employer", "custom.note", "custom.vip"]


def test_formula_injection_is_escaped(db: Database, org: Brokerage) -> None:
    db.run(lambda c: fill(c, org))
    for text in (db.run(csv_io.export_contacts_csv), db.run(csv_io.export_deals_csv)):
        rows = list(csv.reader(io.StringIO(text)))
        for row in rows[1:]:
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    contacts = list(csv.reader(io.StringIO(db.run(csv_io.export_contacts_csv))))
    jo = dict(zip(contacts[0], contacts[1], strict=True))
    assert jo["first_name"] == '\'=HYPERLINK("http://evil.example","x")'
    assert jo["phone"] == "'+61 400 000 000"
    assert jo["custom.note"] == "''quoted"  # a leading quote is doubled, so import can undo it
    deals = list(csv.reader(io.StringIO(db.run(csv_io.export_deals_csv))))
    first = dict(zip(deals[0], deals[1], strict=True))
    assert (first["title"], first["source"], first["labels"]) == (
        "'+1+1 refinance",
        "'-Website",
        "hot;=x",
    )


@pytest.mark.parametrize(
    ("cell", "escaped"),
    [("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
     ("'x", "''x"), ("plain", "plain"), ("", ""), ("a=b", "a=b")],
)  # fmt: skip
def test_escape_cell_round_trips(cell: str, escaped: str) -> None:
    assert csv_io.escape_cell(cell) == escaped
    assert csv_io.unescape_cell(escaped) == cell


def contact_count(database: Database) -> int:
    return database.run(lambda c: c.execute("SELECT count(*) FROM contacts").fetchone()[0])


def deal_count(database: Database) -> int:
    return database.run(lambda c: c.execute("SELECT count(*) FROM deals").fetchone()[0])


def run_import(database: Database, kind: Kind, text: str | bytes, *, piece: int = 65536,
               max_rows: int = 10**6, max_bytes: int = 1 << 30) -> CsvImport:
    """An import as the API runs it: fed ``piece`` bytes at a time, each piece's rows
    checked before the next, then written in one transaction with the stage attached."""
    job = CsvImport(kind, data_dir=database.path.parent, now=NOW, max_rows=max_rows,
                    max_bytes=max_bytes)  # fmt: skip
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        for at in range(0, len(data), piece):
            job.feed(data[at : at + piece])
            database.run(lambda c: job.check(c, budget_s=60))
        job.end()
        database.run(lambda c: job.check(c, budget_s=60))
        job.outcome()
        database.run(job.move, attach=job.attach)
    finally:
        job.close()
    return job


def import_deals(database: Database, text: str) -> list[Deal]:
    job = run_import(database, "deals", text)
    return database.run(lambda c: [store.get_deal(c, i) for i in job.ids])


def import_contacts(database: Database, text: str) -> list[Contact]:
    job = run_import(database, "contacts", text)
    return database.run(lambda c: [store.get_contact(c, i) for i in job.ids])


def test_deal_import_by_names_ids_and_email(db: Database, org: Brokerage) -> None:
    jo = import_contacts(db, "first_name,email\nJo,jo@x.example\n")[0]
    text = (
        "title,workflow,stage,owner_email,amount,currency,labels,contacts,custom.lender\n"
        f"One,home loans,LODGED,ANN@broker.example,10.5,AUD, a ; b ,{jo.id}:co-applicant,ANZ\n"
        f"Two,{org.commercial.id},{org.commercial.stages[1].id},,,,,{jo.id},\n"
    )
    one, two = import_deals(db, text)
    assert (one.workflow_id, one.stage_id, one.owner_user_id) == (
        org.home.id,
        org.home.stages[1].id,
        org.ann.id,
    )
    assert (one.amount, one.labels, one.custom_fields) == ("10.5", ["a", "b"], {"lender": "ANZ"})
    assert [(c.contact_id, c.role) for c in one.contacts] == [(jo.id, "co-applicant")]
    assert (two.workflow_id, two.stage_id, two.owner_user_id) == (
        org.commercial.id,
        org.commercial.stages[1].id,
        None,
    )
    assert two.contacts[0].role == "primary"
    assert one.id.startswith("deal_") and one.created_at == "2026-11-23T11:30:00Z"
    assert db.run(lambda c: store.list_deals(c)) == [one, two]


def test_bad_deal_rows_write_nothing_and_are_all_reported(db: Database, org: Brokerage) -> None:
    jo = import_contacts(db, "first_name\nJo\n")[0]
    text = (
        "title,workflow,stage,owner_email,amount,currency,contacts\n"
        f"Good,Home loans,New,ann@broker.example,100.00,AUD,{jo.id}\n"
        "Bad amount,Home loans,Nowhere,,1 000,AUD,\n"
        "\n"
        f"Bad refs,Home loans,{org.commercial.stages[0].id},zed@broker.example,5,,ct_missing\n"
        ",Nope,New,,,,\n"
        "Refs only,Home loans,Nowhere,,,,ct_missing\n"
    )
    with pytest.raises(CsvImportError) as err:
        import_deals(db, text)
    assert err.value.code == "invalid"
    errors = err.value.errors
    assert [(e.row, e.field) for e in errors] == [
        (3, "stage"),
        (3, "amount"),
        (5, "stage"),
        (5, "owner_email"),
        (5, "currency"),
        (6, "workflow"),
        (6, "title"),
        (7, "stage"),
        (7, "contacts"),
    ]
    assert "Nowhere" in errors[0].message
    assert "Commercial" in errors[2].message and "Home loans" in errors[2].message
    assert "zed@broker.example" in errors[3].message
    assert deal_count(db) == 0


def test_unknown_contact_in_a_deal_row(db: Database, org: Brokerage) -> None:
    with pytest.raises(CsvImportError) as err:
        import_deals(db, "title,workflow,stage,contacts\nT,Home loans,New,ct_a;ct_missing:other\n")
    assert [(e.row, e.field) for e in err.value.errors] == [(2, "contacts"), (2, "contacts")]
    assert "ct_missing" in err.value.errors[1].message
    assert deal_count(db) == 0


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        # a quote never closed would swallow the rest of the file into one first name
        ('first_name,last_name,email\nAl,Smith,al@x.example\n"Bob,Jones,bob@example.com\nCy,Doe,cy@x.example\n',
         3, "line 3 opens a quoted cell that is never closed"),
        ('first_name,last_name\nAl,Smith\nBob,"Jo"nes\n', 3, "line 3 is not valid CSV: ',' expected after '\"'"),
        # a quoted cell over two lines is fine (where a field may hold line breaks); the
        # error after it names its own line
        ('first_name,custom.note\nAl,"line one\nline two"\nBob,"Jo"nes\n', 4,
         "line 4 is not valid CSV: ',' expected after '\"'"),
    ],
)
def test_malformed_csv_is_refused_with_its_line(db: Database, text: str, line: int, why: str) -> None:
    with pytest.raises(CsvImportError) as err:
        import_contacts(db, text)
    assert err.value.errors == [RowError(line, "(row)", why)]
    assert contact_count(db) == 0


def test_bad_contact_row_writes_nothing(db: Database) -> None:
    text = (
        "first_name,last_name,email,address_country,date_of_birth,custom.score\n"
        "Jo,Smith,jo@x.example,AU,1990-01-01,7\n"
        "Al,Smith,not-an-email,Australia,1990-13-01,\n"
    )
    with pytest.raises(CsvImportError) as err:
        import_contacts(db, text)
    assert err.value.errors == [
        RowError(3, "email", "must be an email address"),
        RowError(3, "address_country", "must be an ISO 3166 alpha-2 code such as 'AU'"),
        RowError(3, "date_of_birth", "must be a date written YYYY-MM-DD"),
    ]
    assert contact_count(db) == 0


def test_ids_taken_or_repeated(db: Database, org: Brokerage) -> None:
    import_contacts(db, "id,first_name\nct_1,Jo\n")
    with pytest.raises(CsvImportError) as err:
        import_contacts(db, "id,first_name\nct_1,Again\nct_2,Al\nct_2,Al again\n")
    assert [(e.row, e.field) for e in err.value.errors] == [(2, "id"), (4, "id")]
    assert "repeats row 3" in err.value.errors[1].message
    assert contact_count(db) == 1
    with pytest.raises(CsvImportError) as err:
        import_deals(
            db,
            "title,workflow,stage,referral_peer_node_id,referral_id,origin\n"
            f"A,Home loans,New,{PEER},rfl_1,referral\n"
            f"B,Home loans,New,{PEER},rfl_1,referral\n"
            "C,Home loans,New,,,referral\n",
        )
    assert [(e.row, e.field) for e in err.value.errors] == [(3, "referral_id"), (4, "origin")]
    assert deal_count(db) == 0


def test_bad_headers(db: Database, org: Brokerage) -> None:
    with pytest.raises(CsvImportError) as err:
        import_deals(db, "title,stage,colour,title,custom.=x\nT,New,red,T,1\n")
    assert [(e.row, e.field) for e in err.value.errors] == [
        (1, "colour"), (1, "title"), (1, "custom.=x"), (1, "workflow"),
    ]  # fmt: skip
    with pytest.raises(CsvImportError) as err:
        import_contacts(db, "")
    assert err.value.errors == [RowError(1, "(header)", "the file is empty")]
    with pytest.raises(CsvImportError) as err:
        import_contacts(db, "first_name\nJo,extra\n")
    assert [(e.row, e.field) for e in err.value.errors] == [(2, "(row)")]
    assert contact_count(db) == 0


def test_spreadsheet_quirks_are_accepted(db: Database) -> None:
    """A byte order mark, CRLF line ends, trailing blank rows and short rows."""
    text = "\ufefffirst_name,last_name,phone\r\nJo,Smith,'+61 400\r\nAl\r\n,,\r\n"
    jo, al = import_contacts(db, text)
    assert (jo.first_name, jo.last_name, jo.phone) == ("Jo", "Smith", "+61 400")
    assert (al.first_name, al.last_name) == ("Al", None)


def test_many_bad_rows_list_the_first_hundred_and_count_them_all(db: Database) -> None:
    text = "first_name,email\n" + "".join(f"P{i},not-an-email-{i}\n" for i in range(250)) + "Ok,ok@x.example\n"
    with pytest.raises(CsvImportError) as err:
        run_import(db, "contacts", text, piece=97)
    errors = err.value.errors
    assert len(errors) == ERRORS_SHOWN == 100 and err.value.total == 250
    assert [e.row for e in errors] == list(range(2, 102)) and errors[0].field == "email"
    assert err.value.message == "row 2, email: must be an email address (and 249 more)"
    assert contact_count(db) == 0


def test_an_import_holds_no_more_than_the_ids_it_lists_and_leaves_no_stage(db: Database) -> None:
    job = run_import(db, "contacts", "first_name\n" + "".join(f"P{i}\n" for i in range(250)), piece=1000)
    assert (job.staged, len(job.ids)) == (250, IDS_SHOWN)
    assert job.ids == [c.id for c in db.run(store.list_contacts)][:IDS_SHOWN]
    assert contact_count(db) == 250
    assert list((db.path.parent / FOLDER).iterdir()) == []


def staged(database: Database, kind: Kind, text: str) -> CsvImport:
    """An import whose rows are checked and staged, not yet written."""
    job = CsvImport(kind, data_dir=database.path.parent, now=NOW, max_rows=100, max_bytes=1 << 20)
    job.feed(text.encode())
    job.end()
    database.run(lambda c: job.check(c, budget_s=60))
    job.outcome()
    return job


def test_what_changed_since_the_rows_were_checked_refuses_the_whole_import(db: Database, org: Brokerage) -> None:
    """Rows are checked against the database as they arrive and written later, in one
    transaction: if meanwhile a stage they name is removed, or an id they give is taken,
    that transaction writes nothing."""
    jo = import_contacts(db, "first_name\nJo\n")[0]
    deals = staged(db, "deals", f"title,workflow,stage,contacts\nA,Home loans,New,{jo.id}\nB,Home loans,Settled,\n")
    contacts = staged(db, "contacts", "id,first_name\nct_new,Al\nct_other,Bo\n")
    try:
        db.run(lambda c: store.delete_stage(c, org.home.stages[2].id))  # Settled
        db.run(lambda c: store.insert_contact(c, Contact(id="ct_other", created_at="2026-11-23T11:30:00Z",
                                                          updated_at="2026-11-23T11:30:00Z")))  # fmt: skip
        for job in (deals, contacts):
            with pytest.raises(CrmError) as err:
                db.run(job.move, attach=job.attach)
            assert err.value.code == "conflict" and "send it again" in err.value.message
    finally:
        deals.close()
        contacts.close()
    assert deal_count(db) == 0 and contact_count(db) == 2  # Jo and ct_other
    assert db.run(lambda c: [r[1] for r in c.execute("PRAGMA database_list")]) == ["main"]
