"""CSV export and import of contacts and deals.

Export: a header row, then one row per record, columns in a fixed order followed by one
``custom.<name>`` column per custom field in use (sorted by name). A deal names its
workflow and stage by name and its owner by email, so a file moves between nodes; its
contacts are ``id:role`` joined by ``;`` and its labels are joined by ``;``. Cells that a
spreadsheet would run as a formula (starting with ``= + - @``, tab or carriage return)
are prefixed with a single quote, and so is a cell that starts with a quote, so that
import can undo the prefix exactly.

Import is all or nothing: every row is checked first, and if any row is wrong nothing is
written and :class:`CsvImportError` lists every problem as ``(row, field, message)``, the
header being row 1. No cell may hold a control character (a line break or tab only in
``summary`` and custom fields). Import contacts before the deals that name them. A deal's workflow
and stage may be given by id or by name (case-insensitive), its owner by email. An ``id``
cell keeps the record's id (it must be new); ``created_at``/``updated_at`` cells keep
its times; blank cells mean "not set".
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from node.base.ids import new_id
from node.base.inputs import text_problem
from node.crm import store
from node.crm.errors import CrmError, CsvImportError, RowError
from node.crm.fields import CUSTOM_FIELD_NAME
from node.crm.models import Contact, Deal, Stage, Workflow
from node.crm.parsing import field_errors
from protocol.models import format_ts

CUSTOM = "custom."
CONTACT_COLUMNS = (
    "id", "first_name", "last_name", "email", "phone",
    "address_line1", "address_line2", "address_locality", "address_region",
    "address_postcode", "address_country", "date_of_birth", "created_at", "updated_at",
)  # fmt: skip
DEAL_COLUMNS = (
    "id", "title", "deal_type", "amount", "currency", "workflow", "stage", "owner_email",
    "folder", "source", "summary", "labels", "contacts", "origin",
    "referral_peer_node_id", "referral_id", "created_at", "updated_at",
)  # fmt: skip
_DEAL_REQUIRED = {"title", "workflow", "stage"}
_ADDRESS_PARTS = ("line1", "line2", "locality", "region", "postcode", "country")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def escape_cell(text: str) -> str:
    """Stop a spreadsheet from running the cell as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def unescape_cell(text: str) -> str:
    """Undo :func:`escape_cell`."""
    if len(text) > 1 and text[0] == "'" and text[1:].startswith(_FORMULA_START):
        return text[1:]
    return text


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
        address = [getattr(c.address, part) or "" for part in _ADDRESS_PARTS]
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


# -- import ----------------------------------------------------------------------------

Cells = dict[str, str]


def _read(text: str, columns: tuple[str, ...], required: set[str]) -> list[tuple[int, Cells]]:
    """The data rows as ``(row number, {column: cell})``, or CsvImportError for a bad
    header or a row that is not CSV. Blank rows are skipped; short rows are padded."""
    # strict: a quote that is never closed, or text after a closing quote, is an error,
    # not a cell that swallows the rest of the file.
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise CsvImportError([RowError(1, "(header)", "the file is empty")]) from None
    except csv.Error as exc:
        raise CsvImportError([RowError(1, "(header)", f"is not valid CSV: {exc}")]) from None
    errors: list[RowError] = []
    for i, column in enumerate(header):
        if column in header[:i]:
            errors.append(RowError(1, column, "column appears twice"))
        elif column.startswith(CUSTOM):
            if not CUSTOM_FIELD_NAME.fullmatch(column.removeprefix(CUSTOM)):
                errors.append(RowError(1, column, "is not a valid custom field name"))
        elif column not in columns:
            errors.append(RowError(1, column or f"(column {i + 1})", "is not a known column"))
    errors += [RowError(1, c, "column is missing") for c in sorted(required - set(header))]
    rows: list[tuple[int, Cells]] = []
    number = 1
    starts_on = 2  # the line the next record starts on
    try:
        for cells in reader:
            number += 1
            starts_on = reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(header):
                errors.append(
                    RowError(
                        number, "(row)", f"has {len(cells)} cells; the header has {len(header)}"
                    )
                )
                continue
            cells += [""] * (len(header) - len(cells))
            row = {h: unescape_cell(c) for h, c in zip(header, cells, strict=True)}
            bad = [RowError(number, h, p) for h, c in row.items() if (p := _cell_problem(h, c)) is not None]
            errors += bad
            if not bad:
                rows.append((number, row))
    except csv.Error as exc:
        why = ("opens a quoted cell that is never closed" if "unexpected end of data" in str(exc)
               else f"is not valid CSV: {exc}")
        errors.append(RowError(starts_on, "(row)", f"line {starts_on} {why}"))
    if errors:
        raise CsvImportError(errors)
    return rows


def _cell_problem(column: str, cell: str) -> str | None:
    """The text rule of ``node.base.inputs``: one line, but for the summary and custom fields."""
    return text_problem(cell, multiline=column == "summary" or column.startswith(CUSTOM))


def _given(cells: Cells, names: Iterable[str]) -> dict[str, Any]:
    return {n: cells[n] for n in names if cells.get(n, "").strip()}


def _custom(cells: Cells) -> dict[str, str]:
    return {
        k.removeprefix(CUSTOM): v for k, v in cells.items() if k.startswith(CUSTOM) and v.strip()
    }


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(";") if part.strip()]


def _stamped(data: dict[str, Any], cells: Cells, prefix: str, now: datetime) -> dict[str, Any]:
    """Fill in id and times from the row, or new ones."""
    ts = format_ts(now)
    data["id"] = cells.get("id", "").strip() or new_id(prefix, now)
    data["created_at"] = cells.get("created_at", "").strip() or ts
    data["updated_at"] = cells.get("updated_at", "").strip() or ts
    return data


def _validate(
    number: int, model: type[Any], data: dict[str, Any], column: Callable[[str], str]
) -> tuple[Any, list[RowError]]:
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, [RowError(number, column(f), m) for f, m in field_errors(exc)]


def _problems(
    number: int, problems: list[CrmError], column: Callable[[str], str]
) -> list[RowError]:
    return [RowError(number, column(p.field or "(row)"), p.message) for p in problems]


def _import(
    rows: list[tuple[int, Cells]],
    check: Callable[[int, Cells], tuple[Any, list[RowError]]],
    key: Callable[[Any], Iterable[tuple[str, object]]],
    write: Callable[[Any], Any],
) -> list[Any]:
    """Check every row (and that no two rows share a key), then write all or none."""
    errors: list[RowError] = []
    records: list[Any] = []
    seen: dict[tuple[str, object], int] = {}
    for number, cells in rows:
        record, row_errors = check(number, cells)
        errors += row_errors
        if record is None:
            continue
        for field, value in key(record):
            if (field, value) in seen:
                errors.append(RowError(number, field, f"repeats row {seen[(field, value)]}"))
            seen.setdefault((field, value), number)
        records.append(record)
    if errors:
        raise CsvImportError(errors)
    return [write(r) for r in records]


def _contact_column(field: str) -> str:
    head = field.split(".")[0]
    if head == "address" and "." in field:
        return "address_" + field.split(".")[1]
    return {"custom_fields": "custom", "(input)": "(row)"}.get(head, head)


def import_contacts_csv(conn: sqlite3.Connection, text: str, *, now: datetime) -> list[Contact]:
    """Create a contact from each row of ``text``; all or none (see the module doc)."""
    rows = _read(text, CONTACT_COLUMNS, set())

    def check(number: int, cells: Cells) -> tuple[Contact | None, list[RowError]]:
        data = _given(cells, ("first_name", "last_name", "email", "phone", "date_of_birth"))
        data["address"] = {p: cells.get(f"address_{p}", "") for p in _ADDRESS_PARTS}
        data["custom_fields"] = _custom(cells)
        contact, errors = _validate(
            number, Contact, _stamped(data, cells, "ct", now), _contact_column
        )
        if contact is not None:
            errors += _problems(number, store.contact_problems(conn, contact), _contact_column)
        return contact, errors

    return _import(rows, check, lambda c: [("id", c.id)], lambda c: store.insert_contact(conn, c))


_UNRESOLVED = "-"  # stands in for a workflow or stage already reported unknown

_DEAL_FIELD_COLUMNS = {
    "workflow_id": "workflow",
    "stage_id": "stage",
    "owner_user_id": "owner_email",
    "custom_fields": "custom",
    "referral": "referral_id",
    "referral.peer_node_id": "referral_peer_node_id",
    "referral.referral_id": "referral_id",
    "(input)": "origin",  # the one whole-deal rule: origin "referral" iff a referral
}


def _deal_column(field: str) -> str:
    if field in _DEAL_FIELD_COLUMNS:
        return _DEAL_FIELD_COLUMNS[field]
    head = field.split(".")[0]
    return _DEAL_FIELD_COLUMNS.get(head, head)


class _Places:
    """Workflows and stages by id or name, users by email: resolved once per import."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.workflows = store.list_workflows(conn)
        self.users = {u.email.casefold(): u.id for u in store.list_users(conn)}

    def workflow(self, ref: str) -> Workflow | None:
        for w in self.workflows:
            if w.id == ref:
                return w
        return next((w for w in self.workflows if w.name.casefold() == ref.casefold()), None)

    def stage(self, workflow: Workflow, ref: str) -> Stage | str:
        """The stage, or why there is none."""
        for w in self.workflows:
            for s in w.stages:
                if s.id == ref and w.id != workflow.id:
                    return f"stage {ref!r} belongs to workflow {w.name!r}, not {workflow.name!r}"
                if s.id == ref:
                    return s
        found = workflow.stage_named(ref)
        return found or f"workflow {workflow.name!r} has no stage {ref!r}"


def import_deals_csv(conn: sqlite3.Connection, text: str, *, now: datetime) -> list[Deal]:
    """Create a deal from each row of ``text``; all or none (see the module doc). The
    contacts a row names must exist already."""
    rows = _read(text, DEAL_COLUMNS, _DEAL_REQUIRED)
    places = _Places(conn)

    def check(number: int, cells: Cells) -> tuple[Deal | None, list[RowError]]:
        errors: list[RowError] = []
        data = _given(
            cells,
            ("title", "deal_type", "amount", "currency", "folder", "source", "summary", "origin"),
        )
        workflow_ref, stage_ref = cells["workflow"].strip(), cells["stage"].strip()
        workflow = places.workflow(workflow_ref) if workflow_ref else None
        if workflow is None:
            message = (
                f"no workflow has the id or name {workflow_ref!r}"
                if workflow_ref
                else "is required"
            )
            errors.append(RowError(number, "workflow", message))
        else:
            data["workflow_id"] = workflow.id
            stage = places.stage(workflow, stage_ref) if stage_ref else "is required"
            if isinstance(stage, str):
                errors.append(RowError(number, "stage", stage))
            else:
                data["stage_id"] = stage.id
        owner = cells.get("owner_email", "").strip()
        if owner and owner.casefold() in places.users:
            data["owner_user_id"] = places.users[owner.casefold()]
        elif owner:
            errors.append(RowError(number, "owner_email", f"no user has the email {owner!r}"))
        data["labels"] = _split(cells.get("labels", ""))
        data["contacts"] = [
            dict(zip(("contact_id", "role"), (p.strip() for p in part.split(":", 1)), strict=False))
            for part in _split(cells.get("contacts", ""))
        ]
        referral = _given(cells, ("referral_peer_node_id", "referral_id"))
        if referral:
            data["referral"] = {
                k.replace("referral_peer_", "peer_"): v for k, v in referral.items()
            }
        data["custom_fields"] = _custom(cells)
        # Check the rest even when the workflow, stage or owner is unknown, so that the
        # row's every problem is reported; but each of those columns only once.
        reported = {e.field for e in errors}
        data.setdefault("workflow_id", _UNRESOLVED)
        data.setdefault("stage_id", _UNRESOLVED)
        deal, more = _validate(number, Deal, _stamped(data, cells, "deal", now), _deal_column)
        if deal is not None:
            more += _problems(number, store.deal_problems(conn, deal, new=True), _deal_column)
        errors += [e for e in more if e.field not in reported]
        return (None if errors else deal), errors

    def key(deal: Deal) -> list[tuple[str, object]]:
        keys: list[tuple[str, object]] = [("id", deal.id)]
        if deal.referral is not None:
            keys.append(("referral_id", (deal.referral.peer_node_id, deal.referral.referral_id)))
        return keys

    return _import(rows, check, key, lambda d: store.insert_deal(conn, d))
