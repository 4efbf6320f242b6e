from __future__ import annotations

from datetime import timedelta

import pytest

from node.crm import store
from node.crm.errors import CrmError
from node.crm.models import Address, Contact, ContactIn, ContactPatch
from node.crm.parsing import parse
from node.storage.db import Database

from .conftest import NOW

LATER = NOW + timedelta(days=1)


def create(db: Database, **data) -> Contact:
    return db.run(lambda c: store.create_contact(c, parse(ContactIn, data), now=NOW))


def test_create_and_get(db: Database) -> None:
    jo = create(
        db, first_name=" Jo ", last_name="Smith", email="Jo@Smith.example", phone="+61 2 9999 0000",
        address={"line1": "1 George St", "locality": "Sydney", "region": "NSW", "postcode": "2000", "country": "AU"},
        date_of_birth="1990-02-28", custom_fields={"employer": "ACME"},
    )  # fmt: skip
    assert jo.id.startswith("ct_")
    assert jo.first_name == "Jo"  # stripped
    assert jo.address == Address(
        line1="1 George St", locality="Sydney", region="NSW", postcode="2000", country="AU"
    )
    assert jo.display_name == "Jo Smith"
    assert db.run(lambda c: store.get_contact(c, jo.id)) == jo


def test_blank_optional_fields_are_none(db: Database) -> None:
    c = create(db, first_name="", last_name="Lee", email="  ", address={"line1": ""})
    assert (c.first_name, c.email, c.address.line1) == (None, None, None)
    assert c.display_name == "Lee"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "call me"}, "phone"),
        ({"date_of_birth": "1990-02-30"}, "date_of_birth"),
        ({"date_of_birth": "28/02/1990"}, "date_of_birth"),
        ({"address": {"country": "Australia"}}, "address.country"),
        ({"address": {"street": "x"}}, "address.street"),
        ({"custom_fields": {"=bad": "x"}}, "custom_fields"),
        ({"custom_fields": {"n": 5}}, "custom_fields.n"),
        ({"nickname": "JJ"}, "nickname"),
    ],
)
def test_bad_input_names_the_field(data: dict, field: str) -> None:
    with pytest.raises(CrmError) as err:
        parse(ContactIn, data)
    assert (err.value.code, err.value.field) == ("invalid", field)


def test_update_is_partial(db: Database) -> None:
    jo = create(
        db, first_name="Jo", last_name="Smith", phone="0400 000 000", custom_fields={"a": "1"}
    )
    patch = parse(ContactPatch, {"email": "jo@new.example", "phone": None})
    updated = db.run(lambda c: store.update_contact(c, jo.id, patch, now=LATER))
    assert updated == jo.model_copy(
        update={"email": "jo@new.example", "phone": None, "updated_at": "2026-11-24T11:30:00Z"}
    )
    assert db.run(lambda c: store.get_contact(c, jo.id)) == updated
    with pytest.raises(CrmError) as err:
        db.run(
            lambda c: store.update_contact(c, jo.id, parse(ContactPatch, {"email": "x"}), now=LATER)
        )
    assert err.value.field == "email"
    with pytest.raises(CrmError) as err:
        db.run(
            lambda c: store.update_contact(c, "ct_gone", ContactPatch(first_name="X"), now=LATER)
        )
    assert err.value.code == "not_found" and "ct_gone" in err.value.message


def test_find_by_email_and_search(db: Database) -> None:
    jo = create(db, first_name="Jo", last_name="Smith", email="home@smith.example")
    al = create(db, first_name="Al", last_name="Smith", email="HOME@smith.example")
    kim = create(db, first_name="Kim", last_name="Lee", phone="0400 123 456")
    found = db.run(lambda c: store.find_contacts_by_email(c, "Home@Smith.Example"))
    assert [c.id for c in found] == [jo.id, al.id]
    assert db.run(lambda c: store.find_contacts_by_email(c, "nobody@x.example")) == []

    def ids(**kw) -> list[str]:
        return [c.id for c in db.run(lambda c: store.list_contacts(c, **kw))]

    assert ids() == [jo.id, al.id, kim.id]
    assert ids(q="smith") == [jo.id, al.id]
    assert ids(q="al smith") == [al.id]
    assert ids(q="123") == [kim.id]
    assert ids(limit=1, offset=1) == [al.id]


def test_unknown_contact_is_not_found(db: Database) -> None:
    with pytest.raises(CrmError) as err:
        db.run(lambda c: store.get_contact(c, "ct_other_org"))
    assert err.value.code == "not_found" and "'ct_other_org'" in err.value.message
