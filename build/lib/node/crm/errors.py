"""The CRM's one error type: a stable code, a message naming what is wrong, a field."""

from __future__ import annotations

from typing import Literal, NamedTuple

CrmErrorCode = Literal["not_found", "invalid", "conflict", "too_large"]


class CrmError(Exception):
    """``not_found``: an id this node does not hold (the message names it).
    ``invalid``: input that breaks a rule (``field`` names the input field).
    ``conflict``: input that clashes with what is stored (a duplicate name or id).
    ``too_large``: input past a limit (a CSV import's rows or bytes)."""

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
    """A CSV import refused as a whole. ``errors`` lists its problems, row by row: all of
    them, or the first ones when there are many; ``total`` counts them all."""

    def __init__(self, errors: list[RowError], *, total: int | None = None) -> None:
        first = errors[0]
        self.total = len(errors) if total is None else total
        more = f" (and {self.total - 1} more)" if self.total > 1 else ""
        super().__init__(
            "invalid", f"row {first.row}, {first.field}: {first.message}{more}", first.field
        )
        self.errors = errors
