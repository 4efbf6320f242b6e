from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from node.crm import store
from node.crm.errors import CrmError
from node.crm.models import ContactIn, Deal, DealIn, DealPatch, DealReferral
from node.crm.parsing import parse
from node.storage.db import Database

from .conftest import NOW, Brokerage

LATER = NOW + timedelta(hours=1)
PEER = "A" * 43


def deal_in(org: Brokerage, **over) -> DealIn:
    data = {
        "title": "Smith refinance",
        "workflow_id": org.home.id,
        "stage_id": org.home.stages[0].id,
    }
    return parse(DealIn, {**data, **over})


def create(db: Database, data: DealIn, **kw) -> Deal:
    return db.run(lambda c: store.create_deal(c, data, now=NOW, **kw))


def count(db: Database, table: str) -> int:
    return db.run(lambda c: c.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@pytest.fixture
def smiths(db: Database) -> tuple[str, str]:
    def make(conn: sqlite3.Connection) -> tuple[str, str]:
        jo = store.create_contact(
            conn, ContactIn(first_name="Jo", last_name="Smith", email="jo@smith.example"), now=NOW
        )
        al = store.create_contact(conn, ContactIn(first_name="Al", last_name="Smith"), now=NOW)
        return jo.id, al.id

    return db.run(make)


def test_create_and_get(db: Database, org: Brokerage, smiths: tuple[str, str]) -> None:
    jo, al = smiths
    data = deal_in(
        org, deal_type="home-loan", amount="650000.00", currency="AUD", owner_user_id=org.ann.id,
        folder="Inbox", source="Website", summary="Refinance to a lower rate",
        labels=["hot", "refi", "hot"], custom_fields={"lender": "ANZ", "empty": "  "},
        contacts=[{"contact_id": jo}, {"contact_id": al, "role": "co-applicant"}],
    )  # fmt: skip
    deal = create(db, data)
    assert deal.id.startswith("deal_")
    assert (deal.origin, deal.referral) == ("local", None)
    assert deal.amount == "650000.00" and isinstance(deal.amount, str)
    assert deal.labels == ["hot", "refi"]
    assert deal.custom_fields == {"lender": "ANZ"}
    assert [(c.contact_id, c.role) for c in deal.contacts] == [
        (jo, "primary"),
        (al, "co-applicant"),
    ]
    assert deal.created_at == deal.updated_at == "2026-11-23T11:30:00Z"
    assert db.run(lambda c: store.get_deal(c, deal.id)) == deal
    stored = db.run(lambda c: c.execute("SELECT typeof(amount) FROM deals").fetchone()[0])
    assert stored == "text"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"amount": 650000.5}, "amount"),
        ({"amount": "650,000"}, "amount"),
        ({"amount": "1e6", "currency": "AUD"}, "amount"),
        ({"amount": "-5", "currency": "AUD"}, "amount"),
        ({"amount": "10.00"}, "currency"),
        ({"currency": "aud"}, "currency"),
        ({"title": "  "}, "title"),
        ({"deal_type": "Home Loan"}, "deal_type"),
        ({"colour": "red"}, "colour"),
        ({"labels": ["a;b"]}, "labels"),
        ({"contacts": [{"contact_id": "ct_1", "role": "boss"}]}, "contacts.0.role"),
    ],
)
def test_bad_input_names_the_field(org: Brokerage, over: dict, field: str) -> None:
    with pytest.raises(CrmError) as err:
        deal_in(org, **over)
    assert (err.value.code, err.value.field) == ("invalid", field)
    assert err.value.message.startswith(field + ":")


def test_unknown_references_are_not_found_and_nothing_is_written(
    db: Database, org: Brokerage, smiths: tuple[str, str]
) -> None:
    jo, _ = smiths
    cases = [
        (deal_in(org, workflow_id="wf_elsewhere"), "workflow_id", "wf_elsewhere"),
        (deal_in(org, stage_id="stg_elsewhere"), "stage_id", "stg_elsewhere"),
        (deal_in(org, owner_user_id="usr_elsewhere"), "owner_user_id", "usr_elsewhere"),
        (
            deal_in(org, contacts=[{"contact_id": jo}, {"contact_id": "ct_elsewhere"}]),
            "contacts.1.contact_id",
            "ct_elsewhere",
        ),
    ]
    for data, field, missing in cases:
        with pytest.raises(CrmError) as err:
            create(db, data)
        assert (err.value.code, err.value.field) == ("not_found", field)
        assert missing in err.value.message
    assert count(db, "deals") == count(db, "deal_contacts") == 0


def test_stage_of_another_workflow_is_invalid(db: Database, org: Brokerage) -> None:
    with pytest.raises(CrmError) as err:
        create(db, deal_in(org, stage_id=org.commercial.stages[0].id))
    assert (err.value.code, err.value.field) == ("invalid", "stage_id")
    assert "Commercial" in err.value.message
    assert count(db, "deals") == 0


def test_inactive_owner_cannot_be_given_a_deal(db: Database, org: Brokerage) -> None:
    db.run(lambda c: c.execute("UPDATE users SET active = 0 WHERE id = ?", (org.ann.id,)))
    with pytest.raises(CrmError) as err:
        create(db, deal_in(org, owner_user_id=org.ann.id))
    assert (err.value.code, err.value.field) == ("invalid", "owner_user_id")


def test_get_unknown_deal_names_the_id(db: Database, org: Brokerage) -> None:
    for fn in (
        lambda c: store.get_deal(c, "deal_nope"),
        lambda c: store.update_deal(c, "deal_nope", DealPatch(title="x"), now=NOW),
        lambda c: store.move_deal(c, "deal_nope", org.home.stages[1].id, now=NOW),
    ):
        with pytest.raises(CrmError) as err:
            db.run(fn)
        assert err.value.code == "not_found" and "'deal_nope'" in err.value.message


def test_partial_update(db: Database, org: Brokerage, smiths: tuple[str, str]) -> None:
    jo, al = smiths
    deal = create(
        db,
        deal_in(
            org,
            amount="100.00",
            currency="AUD",
            folder="Inbox",
            labels=["a"],
            contacts=[{"contact_id": jo}],
        ),
    )
    patch = parse(DealPatch, {"title": "Smith purchase", "labels": ["b", "c"]})
    updated = db.run(lambda c: store.update_deal(c, deal.id, patch, now=LATER))
    assert updated == deal.model_copy(
        update={
            "title": "Smith purchase",
            "labels": ["b", "c"],
            "updated_at": "2026-11-23T12:30:00Z",
        }
    )
    # null clears an optional field; amount and currency go together
    cleared = db.run(
        lambda c: store.update_deal(c, deal.id, parse(DealPatch, {"amount": None}), now=LATER)
    )
    assert (cleared.amount, cleared.currency) == (None, "AUD")
    with pytest.raises(CrmError) as err:
        db.run(
            lambda c: store.update_deal(
                c, deal.id, parse(DealPatch, {"amount": "5", "currency": None}), now=LATER
            )
        )
    assert (err.value.code, err.value.field) == ("invalid", "currency")
    with pytest.raises(CrmError) as err:
        db.run(
            lambda c: store.update_deal(c, deal.id, parse(DealPatch, {"title": None}), now=LATER)
        )
    assert (err.value.code, err.value.field) == ("invalid", "title")
    with pytest.raises(CrmError) as err:
        parse(DealPatch, {"stage_id": org.home.stages[1].id})
    assert err.value.field == "stage_id"  # stages change with move_deal
    swapped = db.run(
        lambda c: store.update_deal(
            c, deal.id, DealPatch(contacts=[{"contact_id": al, "role": "primary"}]), now=LATER
        )
    )
    assert [c.contact_id for c in swapped.contacts] == [al]
    assert db.run(lambda c: store.get_deal(c, deal.id)) == swapped


def test_failed_update_changes_nothing(
    db: Database, org: Brokerage, smiths: tuple[str, str]
) -> None:
    jo, _ = smiths
    deal = create(db, deal_in(org, contacts=[{"contact_id": jo}]))
    patch = DealPatch(title="New title", contacts=[{"contact_id": "ct_unknown"}])
    with pytest.raises(CrmError) as err:
        db.run(lambda c: store.update_deal(c, deal.id, patch, now=LATER))
    assert err.value.code == "not_found" and "ct_unknown" in err.value.message
    assert db.run(lambda c: store.get_deal(c, deal.id)) == deal


def test_move_within_and_across_workflows(db: Database, org: Brokerage) -> None:
    deal = create(db, deal_in(org))
    lodged = org.home.stages[1]
    moved = db.run(lambda c: store.move_deal(c, deal.id, lodged.id, now=LATER))
    assert (moved.stage_id, moved.updated_at) == (lodged.id, "2026-11-23T12:30:00Z")
    approved = org.commercial.stages[1]
    with pytest.raises(CrmError) as err:
        db.run(lambda c: store.move_deal(c, deal.id, approved.id, now=LATER))
    assert (err.value.code, err.value.field) == ("invalid", "stage_id")
    assert approved.id in err.value.message and "Commercial" in err.value.message
    assert db.run(lambda c: store.get_deal(c, deal.id)) == moved
    with pytest.raises(CrmError) as err:
        db.run(
            lambda c: store.move_deal(
                c, deal.id, lodged.id, workflow_id=org.commercial.id, now=LATER
            )
        )
    assert (err.value.code, err.value.field) == ("invalid", "stage_id")
    across = db.run(
        lambda c: store.move_deal(c, deal.id, approved.id, workflow_id=org.commercial.id, now=LATER)
    )
    assert (across.workflow_id, across.stage_id) == (org.commercial.id, approved.id)


def test_database_refuses_a_stage_of_another_workflow_too(db: Database, org: Brokerage) -> None:
    deal = create(db, deal_in(org))
    with pytest.raises(sqlite3.IntegrityError):
        db.run(
            lambda c: c.execute(
                "UPDATE deals SET stage_id = ? WHERE id = ?", (org.commercial.stages[0].id, deal.id)
            )
        )


def test_attach_and_detach_contacts(db: Database, org: Brokerage, smiths: tuple[str, str]) -> None:
    jo, al = smiths
    deal = create(db, deal_in(org))
    deal = db.run(lambda c: store.attach_contact(c, deal.id, jo, now=LATER))
    deal = db.run(lambda c: store.attach_contact(c, deal.id, al, role="co-applicant", now=LATER))
    deal = db.run(lambda c: store.attach_contact(c, deal.id, jo, role="other", now=LATER))
    assert [(c.contact_id, c.role) for c in deal.contacts] == [(jo, "other"), (al, "co-applicant")]
    deal = db.run(lambda c: store.detach_contact(c, deal.id, jo, now=LATER))
    assert [c.contact_id for c in deal.contacts] == [al]
    with pytest.raises(CrmError) as err:
        db.run(lambda c: store.detach_contact(c, deal.id, jo, now=LATER))
    assert err.value.code == "not_found"
    with pytest.raises(CrmError) as err:
        db.run(lambda c: store.attach_contact(c, deal.id, "ct_nope", now=LATER))
    assert (err.value.code, err.value.field) == ("not_found", "contact_id")


def test_filters(db: Database, org: Brokerage, smiths: tuple[str, str]) -> None:
    jo, al = smiths
    new, lodged, _ = org.home.stages
    a = create(
        db,
        deal_in(
            org,
            title="Alpha 100% offset",
            owner_user_id=org.ann.id,
            folder="Inbox",
            labels=["hot"],
            contacts=[{"contact_id": jo}],
        ),
    )
    b = create(
        db,
        deal_in(
            org,
            title="Bravo",
            stage_id=lodged.id,
            owner_user_id=org.bob.id,
            summary="first home buyer",
        ),
    )
    c_ = create(
        db,
        deal_in(
            org,
            title="Charlie",
            workflow_id=org.commercial.id,
            stage_id=org.commercial.stages[0].id,
            folder="Inbox",
            contacts=[{"contact_id": al}],
        ),
    )

    def ids(**filters) -> list[str]:
        return [d.id for d in db.run(lambda c: store.list_deals(c, **filters))]

    assert ids() == [a.id, b.id, c_.id]
    assert ids(workflow_id=org.home.id) == [a.id, b.id]
    assert ids(stage_id=lodged.id) == [b.id]
    assert ids(stage_id=new.id) == [a.id]
    assert ids(owner_user_id=org.ann.id) == [a.id]
    assert ids(folder="Inbox") == [a.id, c_.id]
    assert ids(folder="Inbox", workflow_id=org.home.id) == [a.id]
    assert ids(label="hot") == [a.id]
    assert ids(contact_id=al) == [c_.id]
    assert ids(q="bravo") == [b.id]
    assert ids(q="home buyer") == [b.id]
    assert ids(q="smith") == [a.id, c_.id]  # contacts' names
    assert ids(q="Jo Smith") == [a.id]
    assert ids(q="jo@smith") == [a.id]
    assert ids(q="100%") == [a.id]  # LIKE wildcards are literal
    assert ids(q="0%") == [a.id]
    assert ids(q="_") == []
    assert ids(limit=2) == [a.id, b.id]
    assert ids(limit=2, offset=2) == [c_.id]
    for filters, field in [
        ({"workflow_id": "wf_x"}, "workflow_id"),
        ({"stage_id": "stg_x"}, "stage_id"),
        ({"owner_user_id": "usr_x"}, "owner_user_id"),
        ({"contact_id": "ct_x"}, "contact_id"),
    ]:
        with pytest.raises(CrmError) as err:
            ids(**filters)
        assert (err.value.code, err.value.field) == ("not_found", field)


def test_deal_from_referral(db: Database, org: Brokerage) -> None:
    ref = DealReferral(peer_node_id=PEER, referral_id="rfl_1")
    deal = create(db, deal_in(org), referral=ref)
    assert (deal.origin, deal.referral) == ("referral", ref)
    assert db.run(lambda c: store.find_deal_by_referral(c, PEER, "rfl_1")) == deal
    assert db.run(lambda c: store.find_deal_by_referral(c, PEER, "rfl_2")) is None
    assert [d.id for d in db.run(lambda c: store.list_deals(c, origin="referral"))] == [deal.id]
    with pytest.raises(CrmError) as err:
        create(db, deal_in(org), referral=ref)
    assert (err.value.code, err.value.field) == ("conflict", "referral")
    assert count(db, "deals") == 1
