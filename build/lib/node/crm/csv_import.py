"""CSV import of contacts and deals: all or nothing, fed the file as it arrives.

An import (:class:`CsvImport`) takes the file a piece at a time (:meth:`~CsvImport.feed`,
:meth:`~CsvImport.end`; :mod:`node.crm.csv_records` parses it), checks the rows received
against the database a few at a time (:meth:`~CsvImport.check`, for as long as its caller
allows) and stages the good ones in a scratch file (:mod:`node.crm.csv_stage`). Its caller
decides when each step runs, and so can serve other work between them. When the file is
over, :meth:`~CsvImport.outcome` refuses it if any row was wrong, and otherwise
:meth:`~CsvImport.move` writes every row in one transaction.

Every row is checked; if any is wrong nothing is written, and :class:`CsvImportError`
lists the first :data:`ERRORS_SHOWN` problems as ``(row, field, message)`` (the header
being row 1) with the count of them all. Import contacts before the deals that name them.
A deal's workflow and stage may be given by id or by name (case-insensitive), its owner by
email. An ``id`` cell keeps the record's id (it must be new, and not repeat another row's);
``created_at``/``updated_at`` cells keep its times; blank cells mean "not set".
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from node.base.ids import new_id
from node.base.inputs import text_problem
from node.crm import store
from node.crm.csv_records import CUSTOM, Cells, CsvRecords, Record
from node.crm.csv_stage import SCHEMA, Stage
from node.crm.errors import CrmError, CsvImportError, RowError
from node.crm.models import Contact, Deal, Workflow
from node.crm.models import Stage as WorkflowStage
from node.crm.parsing import field_errors
from protocol.models import format_ts

#: Problems listed in a refusal (all are counted).
ERRORS_SHOWN = 100
#: Ids listed in the answer to an import (all are counted).
IDS_SHOWN = 100

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
ADDRESS_PARTS = ("line1", "line2", "locality", "region", "postcode", "country")
_DEAL_REQUIRED = {"title", "workflow", "stage"}

Kind = Literal["contacts", "deals"]


def _cell_problem(column: str, cell: str) -> str | None:
    """The text rule of ``node.base.inputs`` (no control characters): one line, but for
    the summary and custom fields, which may hold line breaks and tabs."""
    return text_problem(cell, multiline=column == "summary" or column.startswith(CUSTOM))


def _given(cells: Cells, names: Iterable[str]) -> dict[str, Any]:
    return {n: cells[n] for n in names if cells.get(n, "").strip()}


def _custom(cells: Cells) -> dict[str, str]:
    return {
        k.removeprefix(CUSTOM): v for k, v in cells.items() if k.startswith(CUSTOM) and v.strip()
    }


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(";") if part.strip()]


def _validate(
    number: int, model: type[Any], data: dict[str, Any], column: Callable[[str], str]
) -> tuple[Any, list[RowError]]:
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, [RowError(number, column(f), m) for f, m in field_errors(exc)]


def _problems(number: int, problems: list[CrmError], column: Callable[[str], str]) -> list[RowError]:
    return [RowError(number, column(p.field or "(row)"), p.message) for p in problems]


class _Rows:
    """What one kind of record needs from an import: its columns, the check of a row,
    its unique keys and the rows it writes."""

    columns: tuple[str, ...]
    required: set[str]
    prefix: str

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.ts = format_ts(now)

    def stamped(self, data: dict[str, Any], cells: Cells) -> dict[str, Any]:
        """Fill in id and times from the row, or new ones."""
        data["id"] = cells.get("id", "").strip() or new_id(self.prefix, self.now)
        data["created_at"] = cells.get("created_at", "").strip() or self.ts
        data["updated_at"] = cells.get("updated_at", "").strip() or self.ts
        return data

    def check(self, conn: sqlite3.Connection, number: int, cells: Cells) -> tuple[Any, list[RowError]]:
        raise NotImplementedError

    def keys(self, record: Any, cells: Cells) -> list[tuple[str, str]]:
        """(column, key) for each value of the row that no other row may repeat: an id
        given in the file (a new one cannot repeat)."""
        return [("id", f"id:{record.id}")] if cells.get("id", "").strip() else []

    def rows(self, record: Any) -> list[tuple[str, dict[str, Any]]]:
        raise NotImplementedError


def _contact_column(field: str) -> str:
    head = field.split(".")[0]
    if head == "address" and "." in field:
        return "address_" + field.split(".")[1]
    return {"custom_fields": "custom", "(input)": "(row)"}.get(head, head)


class _ContactRows(_Rows):
    columns, required, prefix = CONTACT_COLUMNS, set(), "ct"

    def check(self, conn: sqlite3.Connection, number: int, cells: Cells) -> tuple[Contact | None, list[RowError]]:
        data = _given(cells, ("first_name", "last_name", "email", "phone", "date_of_birth"))
        data["address"] = {p: cells.get(f"address_{p}", "") for p in ADDRESS_PARTS}
        data["custom_fields"] = _custom(cells)
        contact, errors = _validate(number, Contact, self.stamped(data, cells), _contact_column)
        if contact is not None:
            errors += _problems(number, store.contact_problems(conn, contact), _contact_column)
        return contact, errors

    def rows(self, record: Contact) -> list[tuple[str, dict[str, Any]]]:
        return store.contact_rows(record)


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

    def stage(self, workflow: Workflow, ref: str) -> WorkflowStage | str:
        """The stage, or why there is none."""
        for w in self.workflows:
            for s in w.stages:
                if s.id == ref and w.id != workflow.id:
                    return f"stage {ref!r} belongs to workflow {w.name!r}, not {workflow.name!r}"
                if s.id == ref:
                    return s
        found = workflow.stage_named(ref)
        return found or f"workflow {workflow.name!r} has no stage {ref!r}"


class _DealRows(_Rows):
    """The contacts a row names must exist already."""

    columns, required, prefix = DEAL_COLUMNS, _DEAL_REQUIRED, "deal"
    places: _Places | None = None

    def check(self, conn: sqlite3.Connection, number: int, cells: Cells) -> tuple[Deal | None, list[RowError]]:
        if self.places is None:
            self.places = _Places(conn)
        places = self.places
        errors: list[RowError] = []
        data = _given(
            cells,
            ("title", "deal_type", "amount", "currency", "folder", "source", "summary", "origin"),
        )
        workflow_ref, stage_ref = cells["workflow"].strip(), cells["stage"].strip()
        workflow = places.workflow(workflow_ref) if workflow_ref else None
        if workflow is None:
            message = (
                f"no workflow has the id or name {workflow_ref!r}" if workflow_ref else "is required"
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
            dict(zip(("contact_id", "role"), part.split(":", 1), strict=False))
            for part in _split(cells.get("contacts", ""))
        ]
        referral = _given(cells, ("referral_peer_node_id", "referral_id"))
        if referral:
            data["referral"] = {k.replace("referral_peer_", "peer_"): v for k, v in referral.items()}
        data["custom_fields"] = _custom(cells)
        # Check the rest even when the workflow, stage or owner is unknown, so that the
        # row's every problem is reported; but each of those columns only once.
        reported = {e.field for e in errors}
        data.setdefault("workflow_id", _UNRESOLVED)
        data.setdefault("stage_id", _UNRESOLVED)
        deal, more = _validate(number, Deal, self.stamped(data, cells), _deal_column)
        if deal is not None:
            more += _problems(number, store.deal_problems(conn, deal, new=True), _deal_column)
        errors += [e for e in more if e.field not in reported]
        return (None if errors else deal), errors

    def keys(self, record: Deal, cells: Cells) -> list[tuple[str, str]]:
        keys = super().keys(record, cells)
        if record.referral is not None:
            keys.append(("referral_id", f"referral:{record.referral.peer_node_id}:{record.referral.referral_id}"))
        return keys

    def rows(self, record: Deal) -> list[tuple[str, dict[str, Any]]]:
        return store.deal_rows(record)


class CsvImport:
    """One import of ``kind`` (see the module's docstring). Call :meth:`close` at the end,
    whatever happened."""

    def __init__(self, kind: Kind, *, data_dir: Path, now: datetime, max_rows: int,
                 max_bytes: int) -> None:  # fmt: skip
        self.kind = kind
        self._rows = _ContactRows(now) if kind == "contacts" else _DealRows(now)
        self._records = CsvRecords(self._rows.columns, self._rows.required, max_rows=max_rows,
                                   max_bytes=max_bytes)  # fmt: skip
        self._pending: deque[Record] = deque()
        self._stage = Stage(data_dir)
        #: The first problems found, and how many there are.
        self.errors: list[RowError] = []
        self.error_count = 0
        #: Rows staged to be written, and the ids of the first of them.
        self.staged = 0
        self.ids: list[str] = []
        #: How long :meth:`move` took: most of its transaction.
        self.move_s = 0.0

    @property
    def attach(self) -> dict[str, Path]:
        """What :meth:`move`'s transaction needs attached (see ``Database.write_alone``)."""
        return {SCHEMA: self._stage.path}

    def feed(self, data: bytes) -> None:
        """Take the next piece of the file. A ``too_large`` or ``invalid`` CrmError (not
        UTF-8) refuses the file at once."""
        self._pending.extend(self._records.feed(data))

    def end(self) -> None:
        """The file is over."""
        self._pending.extend(self._records.end())

    @property
    def pending(self) -> int:
        """Rows received and not yet checked."""
        return len(self._pending)

    def check(self, conn: sqlite3.Connection, *, budget_s: float) -> None:
        """Check rows received (against ``conn``, read only) and stage the good ones until
        none is left or ``budget_s`` has passed. Raises CsvImportError when the file
        turns out to be broken (e.g. a quote never closed)."""
        deadline = time.perf_counter() + budget_s
        self._stage.begin()
        try:
            while self._pending:
                item = self._pending.popleft()
                if isinstance(item, CsvImportError):  # the last of the file we can read
                    self._pending.clear()
                    for error in item.errors:
                        self._error(error)
                    raise CsvImportError(self.errors, total=self.error_count)
                if isinstance(item, RowError):
                    self._error(item)
                else:
                    self._check_row(conn, *item)
                if time.perf_counter() >= deadline:
                    break
        finally:
            self._stage.commit()

    def _check_row(self, conn: sqlite3.Connection, number: int, cells: Cells) -> None:
        bad = [RowError(number, column, problem) for column, cell in cells.items()
               if (problem := _cell_problem(column, cell)) is not None]
        if bad:  # control characters: nothing more to say of this row
            for error in bad:
                self._error(error)
            return
        record, errors = self._rows.check(conn, number, cells)
        for error in errors:
            self._error(error)
        if record is None:
            return
        for column, key in self._rows.keys(record, cells):
            first = self._stage.claim(key, number)
            if first is not None:
                self._error(RowError(number, column, f"repeats row {first}"))
        if self.error_count:  # nothing will be written: staging is over
            return
        for table, row in self._rows.rows(record):
            self._stage.add(table, row)
        self.staged += 1
        if len(self.ids) < IDS_SHOWN:
            self.ids.append(record.id)

    def _error(self, error: RowError) -> None:
        self.error_count += 1
        if len(self.errors) < ERRORS_SHOWN:
            self.errors.append(error)

    def outcome(self) -> None:
        """After :meth:`end` and every row checked: CsvImportError if any row is wrong."""
        if self._pending:
            raise RuntimeError("rows are left to check")
        if self.error_count:
            raise CsvImportError(self.errors, total=self.error_count)

    def move(self, conn: sqlite3.Connection) -> int:
        """Write every staged row; ``conn`` is the node's, in a transaction, with
        :attr:`attach` attached. A ``conflict`` CrmError (and nothing written, once the
        transaction rolls back) when the database changed since the rows were checked so
        that one no longer fits. Returns how many records were written."""
        started = time.perf_counter()
        try:
            self._stage.move(conn)
        except sqlite3.IntegrityError as exc:
            raise CrmError(
                "conflict",
                "nothing was imported: while the file was being checked, something it names "
                f"was removed or an id it gives was taken ({exc}); send it again",
            ) from None
        finally:
            self.move_s = time.perf_counter() - started
        return self.staged

    def close(self) -> None:
        self._stage.close()
