"""Every migration of the node's database, in order, in one place.

A migration is a function of a ``sqlite_utils.Database`` that changes the schema; each
runs once, in its own transaction, and the database's ``user_version`` says which ran.
Versions: 1-9 federation core, 10-19 the CRM, 20-29 opportunities, 30-39 accounts and mail,
40-49 operations. Add new ones at the end of :data:`MIGRATIONS`, in a module of their own;
never change one that has shipped. A database newer than :data:`LATEST` (written by a newer
release) is refused, never used (``node.storage.sqlite.migrate``).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from node.storage.migrations import (
    m001_federation_core,
    m003_assignment_cursor,
    m004_deferred_referrals,
    m005_connection_closing_note,
    m010_crm,
    m011_stage_outcomes,
    m020_opportunities,
    m030_accounts,
    m040_health_probe,
)

Migration = Callable[[sqlite_utils.Database], None]

#: ``(version, name, migration)``, by version.
MIGRATIONS: tuple[tuple[int, str, Migration], ...] = (
    (1, "federation core", m001_federation_core.up),
    (3, "round-robin assignment cursor", m003_assignment_cursor.up),
    (4, "deferred referrals", m004_deferred_referrals.up),
    (5, "connection closing note", m005_connection_closing_note.up),
    (10, "crm", m010_crm.up),
    (11, "stage outcomes", m011_stage_outcomes.up),
    (20, "referral opportunities", m020_opportunities.up),
    (30, "accounts, sessions and mail", m030_accounts.up),
    (40, "health probe", m040_health_probe.up),
)


#: The schema version this code brings a database to.
LATEST: int = MIGRATIONS[-1][0]
