"""Every migration of the node's database, in order, in one place.

A migration is a function ``up`` of a ``sqlite_utils.Database`` that changes the schema,
in a module of its own; each runs once, in its own transaction, and the database's
``user_version`` says which ran. Versions: 1-9 federation core, 10-19 the CRM, 20-29
opportunities, 30-39 accounts, mail and the console, 40-49 scale and operations, 50-54 the partner portal. Add new
ones at the end of :data:`MIGRATIONS`; never change one that has shipped. A database newer than
:data:`LATEST` (written by a newer release) is refused, never used
(``node.storage.sqlite.migrate``).

The table names each migration's module rather than importing it: a node whose database
is current (every start but the first after an upgrade) then loads neither the
migrations nor ``sqlite_utils`` (15 MiB of resident memory with what it imports, see
``bench/idle_memory.py``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

Migration = Callable[["sqlite_utils.Database"], None]

#: ``(version, name, module)``, by version; ``module`` is in this package and has ``up``.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "federation core", "m001_federation_core"),
    (3, "round-robin assignment cursor", "m003_assignment_cursor"),
    (4, "deferred referrals", "m004_deferred_referrals"),
    (5, "connection closing note", "m005_connection_closing_note"),
    (10, "crm", "m010_crm"),
    (11, "stage outcomes", "m011_stage_outcomes"),
    (20, "referral opportunities", "m020_opportunities"),
    (30, "accounts, sessions and mail", "m030_accounts"),
    (31, "stored documents, deal moves, board indexes", "m031_documents_and_moves"),
    (33, "delivery failing episodes", "m033_delivery_failing"),
    (40, "indexes for large nodes", "m040_scale_indexes"),
    (41, "search indexes", "m041_search"),
    (42, "referral tallies for the report", "m042_referral_tallies"),
    (43, "health probe", "m043_health_probe"),
    (50, "partner portal", "m050_partner_portal"),
    (51, "enterprise parents and children", "m051_enterprise"),
    (60, "client portal", "m060_client_portal"),
    (70, "search in created order", "m070_search_order"),
)

#: The version of a database that every migration has run on.
LATEST = MIGRATIONS[-1][0]


def load(module: str) -> Migration:
    """The ``up`` function of the migration in ``module``."""
    up: Migration = importlib.import_module(f"{__name__}.{module}").up
    return up
