from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from node.crm import store
from node.crm.errors import CrmError
from node.crm.models import ContactIn, DealIn, DocumentIn, NoteIn
from node.crm.parsing import parse
from node.storage.db import Database

from .conftest import NOW, Brokerage

SHA = "ab" * 32


@pytest.fixture
def ids(db: Database, org: Brokerage) -> tuple[str, str]:
    def make(conn: sqlite3.Connection) -> tuple[str, str]:
        jo = store.create_contact(conn, ContactIn(first_name="Jo"), now=NOW)
        deal = store.create_deal(
            conn,
            DealIn(
                title="T",
                workflow_id=org.home.id,
                stage_id=org.home.stages[0].id,
                contacts=[{"contact_id": jo.id}],
            ),
            now=NOW,
        )
        return deal.id, jo.id

    return db.run(make)


def test_notes_on_deals_and_contacts(db: Database, org: Brokerage, ids: tuple[str, str]) -> None:
    deal_id, contact_id = ids

    def add(body: str, minutes: int, **kw):
        data = {k: kw.pop(k) for k in ("deal_id", "contact_id") if k in kw}
        note = NoteIn(body=body, **data)
        return db.run(lambda c: store.add_note(c, note, now=NOW + timedelta(minutes=minutes), **kw))

    first = add("Called the client", 1, deal_id=deal_id, author_user_id=org.ann.id)
    system = add("Referral sent to Acme Finance", 2, deal_id=deal_id, kind="system")
    on_contact = add("Prefers email", 3, contact_id=contact_id, author_user_id=org.bob.id)
    both = add(
        "Jo is the main applicant",
        4,
        deal_id=deal_id,
        contact_id=contact_id,
        author_user_id=org.ann.id,
    )
    assert first.kind == "user" and first.author_user_id == org.ann.id
    assert (system.kind, system.author_user_id) == ("system", None)
    assert first.created_at == "2026-11-23T11:31:00Z"

    def listed(**kw) -> list[str]:
        return [n.id for n in db.run(lambda c: store.list_notes(c, **kw))]

    assert listed(deal_id=deal_id) == [first.id, system.id, both.id]
    assert listed(contact_id=contact_id) == [on_contact.id, both.id]
    assert listed(deal_id=deal_id, contact_id=contact_id) == [both.id]
    assert db.run(lambda c: store.list_notes(c, deal_id=deal_id))[0] == first


def test_note_rules(db: Database, org: Brokerage, ids: tuple[str, str]) -> None:
    deal_id, _ = ids
    with pytest.raises(CrmError) as err:
        parse(NoteIn, {"body": "orphan"})
    assert (err.value.code, err.value.field) == ("invalid", "contact_id")
    with pytest.raises(CrmError) as err:
        parse(NoteIn, {"deal_id": deal_id, "body": ""})
    assert err.value.field == "body"
    with pytest.raises(CrmError) as err:
        db.run(lambda c: store.add_note(c, NoteIn(deal_id=deal_id, body="x"), now=NOW))
    assert (err.value.code, err.value.field) == ("invalid", "author_user_id")
    for note, field in [
        (NoteIn(deal_id="deal_elsewhere", body="x"), "deal_id"),
        (NoteIn(contact_id="ct_elsewhere", body="x"), "contact_id"),
    ]:
        with pytest.raises(CrmError) as err:
            db.run(lambda c, note=note: store.add_note(c, note, now=NOW, author_user_id=org.ann.id))
        assert (err.value.code, err.value.field) == ("not_found", field)
    with pytest.raises(CrmError) as err:
        db.run(lambda c: store.list_notes(c, deal_id="deal_elsewhere"))
    assert err.value.code == "not_found" and "deal_elsewhere" in err.value.message
    assert db.run(lambda c: c.execute("SELECT count(*) FROM notes").fetchone()[0]) == 0


def test_document_metadata(db: Database, ids: tuple[str, str]) -> None:
    deal_id, _ = ids
    guide = parse(
        DocumentIn,
        {
            "deal_id": deal_id,
            "name": "credit-guide.pdf",
            "label": "Credit guide",
            "size_bytes": 48213,
            "sha256": SHA,
        },
    )
    doc = db.run(lambda c: store.add_document(c, guide, now=NOW))
    privacy = DocumentIn(
        deal_id=deal_id, name="privacy.pdf", label="Privacy disclosure", size_bytes=1, sha256=SHA
    )
    other = db.run(lambda c: store.add_document(c, privacy, now=NOW))
    assert doc.id.startswith("doc_") and doc.size_bytes == 48213
    assert db.run(lambda c: store.get_document(c, doc.id)) == doc
    assert db.run(lambda c: store.list_documents(c, deal_id)) == [doc, other]
    assert db.run(lambda c: store.list_documents(c, deal_id, label="credit GUIDE")) == [doc]
    for bad, field in [
        ({"sha256": "xyz"}, "sha256"),
        ({"size_bytes": -1}, "size_bytes"),
        ({"size_bytes": "12"}, "size_bytes"),
        ({"name": "../etc/passwd"}, "name"),
    ]:
        with pytest.raises(CrmError) as err:
            parse(DocumentIn, {**guide.model_dump(), **bad})
        assert err.value.field == field
    with pytest.raises(CrmError) as err:
        db.run(
            lambda c: store.add_document(c, guide.model_copy(update={"deal_id": "deal_x"}), now=NOW)
        )
    assert (err.value.code, err.value.field) == ("not_found", "deal_id")
    with pytest.raises(CrmError) as err:
        db.run(lambda c: store.get_document(c, "doc_x"))
    assert err.value.code == "not_found"
