"""CSV export of contacts and deals (import is :mod:`node.crm.csv_import`).

Export: a header row, then one row per record, columns in a fixed order followed by one
``custom.<name>`` column per custom field in use (sorted by name). A deal names its
workflow and stage by name and its owner by email, so a file moves between nodes; its
contacts are ``id:role`` joined by ``;`` and its labels are joined by ``;``. Cells that a
spreadsheet would run as a formula (starting with ``= + - @``, tab or carriage return)
are prefixed with a single quote, and so is a cell that starts with a quote, so that
import can undo the prefix exactly (:func:`unescape_cell`).
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterable

from node.crm import store
from node.crm.csv_import import ADDRESS_PARTS, CONTACT_COLUMNS, DEAL_COLUMNS
from node.crm.csv_records import CUSTOM, FORMULA_START, unescape_cell
from node.crm.models import Contact, Deal

__all__ = ["CONTACT_COLUMNS", "DEAL_COLUMNS", "escape_cell", "export_contacts_csv",
           "export_deals_csv", "unescape_cell"]


def escape_cell(text: str) -> str:
    """Stop a spreadsheet from running the cell as a formula."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _write(header: list[str], rows: Iterable[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([escape_cell(cell) for cell in row])
    return out.getvalue()


def _custom_columns(records: Iterable[Contact | Deal]) -> list[str]:
    return sorted({name for r in records for name in r.custom_fields})


# -- export ----------------------------------------------------------------------------


def export_contacts_csv(conn: sqlite3.Connection, contacts: list[Contact] | None = None) -> str:
    """``contacts`` (default: all of them) as CSV text."""
    if contacts is None:
        contacts = store.list_contacts(conn)
    custom = _custom_columns(contacts)

    def row(c: Contact) -> list[str]:
        address = [getattr(c.address, part) or "" for part in ADDRESS_PARTS]
        return [
            c.id, c.first_name or "", c.last_name or "", c.email or "", c.phone or "",
            *address, c.date_of_birth or "", c.created_at, c.updated_at,
            *(c.custom_fields.get(name, "") for name in custom),
        ]  # fmt: skip

    return _write([*CONTACT_COLUMNS, *(CUSTOM + n for n in custom)], map(row, contacts))


def export_deals_csv(conn: sqlite3.Connection, deals: list[Deal] | None = None) -> str:
    """``deals`` (default: all of them) as CSV text."""
    if deals is None:
        deals = store.list_deals(conn)
    workflows = {w.id: w for w in store.list_workflows(conn)}
    stages = {s.id: s for w in workflows.values() for s in w.stages}
    emails = {u.id: u.email for u in store.list_users(conn)}
    custom = _custom_columns(deals)

    def row(d: Deal) -> list[str]:
        return [
            d.id, d.title, d.deal_type or "", d.amount or "", d.currency or "",
            workflows[d.workflow_id].name, stages[d.stage_id].name,
            emails[d.owner_user_id] if d.owner_user_id else "",
            d.folder, d.source, d.summary, ";".join(d.labels),
            ";".join(f"{c.contact_id}:{c.role}" for c in d.contacts), d.origin,
            d.referral.peer_node_id if d.referral else "",
            d.referral.referral_id if d.referral else "",
            d.created_at, d.updated_at,
            *(d.custom_fields.get(name, "") for name in custom),
        ]  # fmt: skip

    return _write([*DEAL_COLUMNS, *(CUSTOM + n for n in custom)], map(row, deals))
