from __future__ import annotations

import sqlite3

import pytest

from node.crm import store
from node.crm.errors import CrmError
from node.crm.models import DealIn, WorkflowIn, WorkflowPatch
from node.crm.parsing import parse
from node.storage.db import Database

from .conftest import NOW, Brokerage


def names(workflow) -> list[str]:
    return [s.name for s in workflow.stages]


def test_users_are_read_from_the_core_table(db: Database, org: Brokerage) -> None:
    def check(conn: sqlite3.Connection) -> None:
        assert store.get_user(conn, org.ann.id) == org.ann
        assert org.ann.role == "broker" and org.ann.active
        assert store.find_user_by_email(conn, "ANN@broker.example") == org.ann
        assert store.find_user_by_email(conn, "nobody@broker.example") is None
        conn.execute("UPDATE users SET active = 0 WHERE id = ?", (org.ann.id,))
        assert [u.id for u in store.list_users(conn)] == [org.ann.id, org.bob.id]
        assert [u.id for u in store.list_users(conn, active_only=True)] == [org.bob.id]

    db.run(check)


def test_duplicate_user_email_conflicts(db: Database, org: Brokerage) -> None:
    with pytest.raises(CrmError) as err:
        db.run(lambda c: store.create_user(c, "Ann@Broker.example", "Ann 2", "broker", NOW))
    assert (err.value.code, err.value.field) == ("conflict", "email")


def test_bad_user_input_is_invalid(db: Database) -> None:
    with pytest.raises(CrmError) as err:
        db.run(lambda c: store.create_user(c, "ann@x.example", "Ann", "owner", NOW))  # type: ignore[arg-type]
    assert (err.value.code, err.value.field) == ("invalid", "role")


def test_workflow_keeps_stage_order(db: Database, org: Brokerage) -> None:
    assert names(org.home) == ["New", "Lodged", "Settled"]
    assert [s.position for s in org.home.stages] == [0, 1, 2]
    assert {s.workflow_id for s in org.home.stages} == {org.home.id}
    assert db.run(lambda c: store.get_workflow(c, org.home.id)) == org.home
    assert [w.name for w in db.run(store.list_workflows)] == ["Commercial", "Home loans"]
    assert db.run(lambda c: store.find_workflow_by_name(c, "home LOANS")) == org.home


def test_add_stage_at_position_and_at_end(db: Database, org: Brokerage) -> None:
    wf = db.run(lambda c: store.add_stage(c, org.home.id, "Approved", position=2, now=NOW))
    assert names(wf) == ["New", "Lodged", "Approved", "Settled"]
    wf = db.run(lambda c: store.add_stage(c, org.home.id, "Lost", now=NOW))
    assert names(wf) == ["New", "Lodged", "Approved", "Settled", "Lost"]
    wf = db.run(lambda c: store.add_stage(c, org.home.id, "Lead", position=0, now=NOW))
    assert names(wf) == ["Lead", "New", "Lodged", "Approved", "Settled", "Lost"]
    assert [s.position for s in wf.stages] == list(range(6))


def test_reorder_stages(db: Database, org: Brokerage) -> None:
    new, lodged, settled = (s.id for s in org.home.stages)
    wf = db.run(lambda c: store.reorder_stages(c, org.home.id, [settled, new, lodged]))
    assert names(wf) == ["Settled", "New", "Lodged"]


@pytest.mark.parametrize("which", ["missing one", "repeated", "foreign"])
def test_reorder_must_be_a_permutation(db: Database, org: Brokerage, which: str) -> None:
    new, lodged, settled = (s.id for s in org.home.stages)
    order = {
        "missing one": [new, lodged],
        "repeated": [new, lodged, lodged],
        "foreign": [new, lodged, org.commercial.stages[0].id],
    }[which]
    with pytest.raises(CrmError) as err:
        db.run(lambda c: store.reorder_stages(c, org.home.id, order))
    assert (err.value.code, err.value.field) == ("invalid", "stage_ids")
    assert db.run(lambda c: store.get_workflow(c, org.home.id)) == org.home


def test_stage_names_unique_within_workflow(db: Database, org: Brokerage) -> None:
    with pytest.raises(CrmError) as err:
        db.run(lambda c: store.add_stage(c, org.home.id, "lodged", now=NOW))
    assert err.value.code == "conflict"
    # the same name in another workflow is fine
    wf = db.run(lambda c: store.add_stage(c, org.commercial.id, "Lodged", now=NOW))
    assert names(wf) == ["Enquiry", "Approved", "Lodged"]
    with pytest.raises(CrmError) as err:
        parse(WorkflowIn, {"name": "X", "owner_user_id": org.bob.id, "stage_names": ["A", "a"]})
    assert err.value.field == "stage_names"


def test_rename_and_delete_stage(db: Database, org: Brokerage) -> None:
    new, lodged, settled = org.home.stages
    wf = db.run(lambda c: store.rename_stage(c, lodged.id, "Submitted"))
    assert names(wf) == ["New", "Submitted", "Settled"]
    db.run(
        lambda c: store.create_deal(
            c, DealIn(title="T", workflow_id=org.home.id, stage_id=settled.id), now=NOW
        )
    )
    with pytest.raises(CrmError) as err:
        db.run(lambda c: store.delete_stage(c, settled.id))
    assert err.value.code == "conflict"
    wf = db.run(lambda c: store.delete_stage(c, new.id))
    assert names(wf) == ["Submitted", "Settled"]
    assert [s.position for s in wf.stages] == [0, 1]


def test_workflow_names_unique_and_owner_checked(db: Database, org: Brokerage) -> None:
    def create(name: str, owner: str):
        return lambda c: store.create_workflow(
            c, WorkflowIn(name=name, owner_user_id=owner, stage_names=["A"]), now=NOW
        )

    with pytest.raises(CrmError) as err:
        db.run(create("HOME LOANS", org.bob.id))
    assert (err.value.code, err.value.field) == ("conflict", "name")
    with pytest.raises(CrmError) as err:
        db.run(create("Insurance", "usr_nobody"))
    assert (err.value.code, err.value.field) == ("not_found", "owner_user_id")
    assert "usr_nobody" in err.value.message
    db.run(lambda c: c.execute("UPDATE users SET active = 0 WHERE id = ?", (org.ann.id,)))
    with pytest.raises(CrmError) as err:
        db.run(create("Insurance", org.ann.id))
    assert (err.value.code, err.value.field) == ("invalid", "owner_user_id")
    assert db.run(lambda c: store.find_workflow_by_name(c, "Insurance")) is None


def test_update_workflow(db: Database, org: Brokerage) -> None:
    wf = db.run(
        lambda c: store.update_workflow(
            c, org.home.id, WorkflowPatch(name="Residential", owner_user_id=org.ann.id)
        )
    )
    assert (wf.name, wf.owner_user_id, wf.stages) == ("Residential", org.ann.id, org.home.stages)
    with pytest.raises(CrmError) as err:
        db.run(lambda c: store.update_workflow(c, org.home.id, WorkflowPatch(name="commercial")))
    assert err.value.code == "conflict"


def test_unknown_workflow_and_stage_are_not_found(db: Database, org: Brokerage) -> None:
    for fn, missing in [
        (lambda c: store.get_workflow(c, "wf_other_org"), "wf_other_org"),
        (lambda c: store.add_stage(c, "wf_other_org", "X", now=NOW), "wf_other_org"),
        (lambda c: store.get_stage(c, "stg_other_org"), "stg_other_org"),
        (lambda c: store.rename_stage(c, "stg_other_org", "X"), "stg_other_org"),
    ]:
        with pytest.raises(CrmError) as err:
            db.run(fn)
        assert err.value.code == "not_found"
        assert missing in err.value.message
