"""A real SQLite file per test, migrated by ``node.storage.db.Database``, and a small brokerage
seeded into it: two users and two workflows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.crm import store
from node.crm.models import User, Workflow, WorkflowIn
from node.storage.db import Database

NOW = datetime(2026, 11, 23, 11, 30, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Brokerage:
    ann: User  # broker
    bob: User  # admin
    home: Workflow  # New, Lodged, Settled
    commercial: Workflow  # Enquiry, Approved


def seed(conn: sqlite3.Connection) -> Brokerage:
    ann = store.create_user(conn, "ann@broker.example", "Ann Example", "broker", NOW)
    bob = store.create_user(conn, "bob@broker.example", "Bob Example", "admin", NOW)
    home = store.create_workflow(
        conn,
        WorkflowIn(
            name="Home loans", owner_user_id=bob.id, stage_names=["New", "Lodged", "Settled"]
        ),
        now=NOW,
    )
    commercial = store.create_workflow(
        conn,
        WorkflowIn(name="Commercial", owner_user_id=bob.id, stage_names=["Enquiry", "Approved"]),
        now=NOW,
    )
    return Brokerage(ann, bob, home, commercial)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "node.db")
    yield database
    database.close_sync()


@pytest.fixture
def org(db: Database) -> Brokerage:
    return db.run(seed)
