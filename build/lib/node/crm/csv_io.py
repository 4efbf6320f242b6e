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
from dataclasses import dataclass

from node.crm import store
from node.crm.csv_import import ADDRESS_PARTS, CONTACT_COLUMNS, DEAL_COLUMNS
from node.crm.csv_records import CUSTOM, FORMULA_START, unescape_cell
from node.crm.models import Contact, Deal

__all__ = ["CONTACT_COLUMNS", "DEAL_COLUMNS", "DealNames", "contact_rows", "contacts_header", "csv_text",
           "custom_columns", "deal_rows", "deals_header", "escape_cell", "export_contacts_csv",
           "export_deals_csv", "unescape_cell"]


def escape_cell(text: str) -> str:
    """Stop a spreadsheet from running the cell as a formula."""
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_text(rows: Iterable[list[str]], *, escape: bool = True) -> str:
    """``rows`` as CSV text (cells escaped, unless they are a header's names)."""
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows:
        writer.writerow([escape_cell(cell) for cell in row] if escape else row)
    return out.getvalue()


def custom_columns(records: Iterable[Contact | Deal]) -> list[str]:
    """The custom fields ``records`` use, as the export's extra columns are ordered."""
    return sorted({name for r in records for name in r.custom_fields})


# -- export ----------------------------------------------------------------------------
#
# A file is its header (the fixed columns, then a ``custom.<name>`` column per custom
# field in use) and its records' rows; ``node.http.csv_api`` streams one page at a time.


def contacts_header(custom: list[str]) -> list[str]:
    return [*CONTACT_COLUMNS, *(CUSTOM + n for n in custom)]


def contact_rows(contacts: Iterable[Contact], custom: list[str]) -> Iterable[list[str]]:
    for c in contacts:
        address = [getattr(c.address, part) or "" for part in ADDRESS_PARTS]
        yield [
            c.id, c.first_name or "", c.last_name or "", c.email or "", c.phone or "",
            *address, c.date_of_birth or "", c.created_at, c.updated_at,
            *(c.custom_fields.get(name, "") for name in custom),
        ]  # fmt: skip


@dataclass(frozen=True)
class DealNames:
    """How a deal's row names its workflow, stage and owner."""

    workflows: dict[str, str]
    stages: dict[str, str]
    emails: dict[str, str]

    @classmethod
    def read(cls, conn: sqlite3.Connection) -> DealNames:
        workflows = store.list_workflows(conn)
        return cls({w.id: w.name for w in workflows}, {s.id: s.name for w in workflows for s in w.stages},
                   {u.id: u.email for u in store.list_users(conn)})


def deals_header(custom: list[str]) -> list[str]:
    return [*DEAL_COLUMNS, *(CUSTOM + n for n in custom)]


def deal_rows(deals: Iterable[Deal], custom: list[str], names: DealNames) -> Iterable[list[str]]:
    for d in deals:
        yield [
            d.id, d.title, d.deal_type or "", d.amount or "", d.currency or "",
            names.workflows[d.workflow_id], names.stages[d.stage_id],
            names.emails[d.owner_user_id] if d.owner_user_id else "",
            d.folder, d.source, d.summary, ";".join(d.labels),
            ";".join(f"{c.contact_id}:{c.role}" for c in d.contacts), d.origin,
            d.referral.peer_node_id if d.referral else "",
            d.referral.referral_id if d.referral else "",
            d.created_at, d.updated_at,
            *(d.custom_fields.get(name, "") for name in custom),
        ]  # fmt: skip


def export_contacts_csv(conn: sqlite3.Connection, contacts: list[Contact] | None = None) -> str:
    """``contacts`` (default: all of them) as CSV text, whole."""
    if contacts is None:
        contacts = store.list_contacts(conn)
    custom = custom_columns(contacts)
    return csv_text([contacts_header(custom)], escape=False) + csv_text(contact_rows(contacts, custom))


def export_deals_csv(conn: sqlite3.Connection, deals: list[Deal] | None = None) -> str:
    """``deals`` (default: all of them) as CSV text, whole."""
    if deals is None:
        deals = store.list_deals(conn)
    custom = custom_columns(deals)
    return csv_text([deals_header(custom)], escape=False) + csv_text(deal_rows(deals, custom, DealNames.read(conn)))
