"""The CRM's one error type: a stable code, a message naming what is wrong, a field."""

from __future__ import annotations

from typing import Literal, NamedTuple

CrmErrorCode = Literal["not_found", "invalid", "conflict"]


class CrmError(Exception):
    """``not_found``: an id this node does not hold (the message names it).
    ``invalid``: input that breaks a rule (``field`` names the input field).
    ``conflict``: input that clashes with what is stored (a duplicate name or id)."""

    def __init__(self, code: CrmErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code: CrmErrorCode = code
        self.message = message
        self.field = field

    def __repr__(self) -> str:
        return f"CrmError({self.code!r}, {self.message!r}, field={self.field!r})"


class RowError(NamedTuple):
    """One problem in an imported CSV file. ``row`` counts records as a spreadsheet
    does: the header is row 1, the first data row is row 2."""

    row: int
    field: str
    message: str


class CsvImportError(CrmError):
    """A CSV import refused as a whole; ``errors`` lists every problem of every row."""

    def __init__(self, errors: list[RowError]) -> None:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(
            "invalid", f"row {first.row}, {first.field}: {first.message}{more}", first.field
        )
        self.errors = errors
