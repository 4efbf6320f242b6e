"""Reading a CSV file as it arrives: bytes in, records out.

:class:`CsvRecords` is fed the file in pieces of any size (:meth:`~CsvRecords.feed`, then
:meth:`~CsvRecords.end`) and hands back the records each piece completes, so an import
holds one piece at a time, never the file. It checks the header against the columns an
import knows, and its limits as it goes: more rows than ``max_rows``, more bytes than
``max_bytes`` or a record longer than ``max_record_chars`` is a ``too_large`` error at
once, without reading on.

The file is UTF-8 (a byte order mark is dropped) and parsed as Python's ``csv`` module
does, strictly: a quote that is never closed, or text after a closing quote, is refused
with the line it starts on, not read as a cell that swallows the rest of the file. The
``csv`` reader pulls lines from an iterator; here that iterator says "not yet" when a
record runs past the text received so far, and the record is read again, whole, once more
has come.

What comes out, in order: ``(row number, {column: cell})`` for each data row (short rows
padded with blanks, blank rows skipped, formula escapes undone), a :class:`RowError` for a
row that is not a record of the header's columns, and last, if the file breaks off, the
:class:`CsvImportError` that says where. Rows are numbered as a spreadsheet does: the
header is row 1.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import deque

from node.crm.errors import CrmError, CsvImportError, RowError
from node.crm.fields import CUSTOM_FIELD_NAME

CUSTOM = "custom."
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")

Cells = dict[str, str]
Record = tuple[int, Cells] | RowError | CsvImportError


def unescape_cell(text: str) -> str:
    """Undo :func:`node.crm.csv_io.escape_cell`: a quote put before a formula."""
    if len(text) > 1 and text[0] == "'" and text[1:].startswith(FORMULA_START):
        return text[1:]
    return text


class _NotYet(Exception):
    """The record being read goes on past the text received so far."""


class _Lines:
    """The lines the ``csv`` reader pulls. Those of the record being read are kept
    (``taken``) so that the record can be read again when it is not complete yet."""

    def __init__(self) -> None:
        self.ready: deque[str] = deque()
        self.taken: list[str] = []
        self.ended = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.ready:
            line = self.ready.popleft()
            self.taken.append(line)
            return line
        if self.ended:
            raise StopIteration
        raise _NotYet

    def rewind(self) -> None:
        self.ready.extendleft(reversed(self.taken))
        self.taken = []


class CsvRecords:
    """One CSV file, fed as it arrives (see the module's docstring)."""

    def __init__(self, columns: tuple[str, ...], required: set[str], *, max_rows: int,
                 max_bytes: int, max_record_chars: int = 1 << 20) -> None:  # fmt: skip
        self.columns, self.required = columns, required
        self.max_rows, self.max_bytes, self.max_record_chars = max_rows, max_bytes, max_record_chars
        self.header: list[str] | None = None
        #: The row number of the last record read (the header is row 1).
        self.number = 1
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._bytes = 0  # fed so far
        self._at_start = True  # no text decoded yet: a byte order mark may come
        self._unsplit = ""  # text after the last complete line
        self._lines_split = 0  # complete lines handed to the reader so far
        self._lines_read = 0  # lines of complete records
        self._lines = _Lines()
        self._reader = csv.reader(self._lines, strict=True)
        self._failed = False

    def feed(self, data: bytes) -> list[Record]:
        """The records that ``data``, the next piece of the file, completes."""
        if self._failed:
            return []
        self._bytes += len(data)
        if self._bytes > self.max_bytes:
            raise CrmError("too_large", f"the file is larger than {self.max_bytes} bytes "
                           "(csv_import_max_bytes); split it", "(body)")  # fmt: skip
        self._split(self._decode(data, final=False))
        return self._records()

    def end(self) -> list[Record]:
        """The records left when the file is over."""
        if self._failed:
            return []
        text = self._decode(b"", final=True)
        self._split(text)
        if self._unsplit:
            self._lines.ready.append(self._unsplit)
            self._unsplit = ""
        self._lines.ended = True
        records = self._records()
        if self.header is None and not self._failed:
            records.append(CsvImportError([RowError(1, "(header)", "the file is empty")]))
        return records

    def _decode(self, data: bytes, *, final: bool) -> str:
        held = len(self._decoder.getstate()[0])  # bytes of a character begun in the last piece
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            at = self._bytes - len(data) - held + exc.start
            raise CrmError("invalid", f"the file is not UTF-8 text (byte {at}); save it as CSV UTF-8",
                           "(body)") from None  # fmt: skip
        if self._at_start and text:
            self._at_start = False
            text = text.removeprefix("\ufeff")
        return text

    def _split(self, text: str) -> None:
        """Hand the complete lines of the text so far to the reader, as ``open(newline="")``
        would split them: a line ends at LF, CR LF or CR; a last line without LF waits (a
        CR may be the first half of CR LF)."""
        if not text:
            return
        lines = io.StringIO(self._unsplit + text, newline="").readlines()
        self._unsplit = lines.pop() if not lines[-1].endswith("\n") else ""
        self._lines.ready.extend(lines)
        self._lines_split += len(lines)
        if len(self._unsplit) > self.max_record_chars:
            self._too_long(self._lines_split + 1)

    def _too_long(self, line: int) -> None:
        raise CrmError("too_large", f"line {line} starts a row longer than {self.max_record_chars} "
                       "characters; is a quote never closed?", "(body)")  # fmt: skip

    def _records(self) -> list[Record]:
        records: list[Record] = []
        lines = self._lines
        while not self._failed:
            starts_on = self._lines_read + 1
            try:
                cells = next(self._reader)
            except _NotYet:
                if sum(map(len, lines.taken)) + len(self._unsplit) > self.max_record_chars:
                    self._too_long(starts_on)
                lines.rewind()
                break
            except StopIteration:
                break
            except csv.Error as exc:
                self._failed = True
                records.append(self._broken(exc, starts_on))
                break
            self._lines_read += len(lines.taken)
            lines.taken = []
            if self.header is None:
                self._take_header(cells)
                continue
            self.number += 1
            if self.number - 1 > self.max_rows:
                raise CrmError("too_large", f"the file has more than {self.max_rows} rows "
                               "(csv_import_max_rows); split it", "(body)")  # fmt: skip
            records.extend(self._row(cells))
        return records

    def _broken(self, exc: csv.Error, line: int) -> CsvImportError:
        text = str(exc)
        if self.header is None:
            return CsvImportError([RowError(1, "(header)", f"is not valid CSV: {text}")])
        if "unexpected end of data" in text:
            why = "opens a quoted cell that is never closed"
        elif "field larger than field limit" in text:
            why = f"has a cell longer than {csv.field_size_limit()} characters; is a quote never closed?"
        else:
            why = f"is not valid CSV: {text}"
        return CsvImportError([RowError(line, "(row)", f"line {line} {why}")])

    def _take_header(self, cells: list[str]) -> None:
        header = [h.strip() for h in cells]
        errors: list[RowError] = []
        for i, column in enumerate(header):
            if column in header[:i]:
                errors.append(RowError(1, column, "column appears twice"))
            elif column.startswith(CUSTOM):
                if not CUSTOM_FIELD_NAME.fullmatch(column.removeprefix(CUSTOM)):
                    errors.append(RowError(1, column, "is not a valid custom field name"))
            elif column not in self.columns:
                errors.append(RowError(1, column or f"(column {i + 1})", "is not a known column"))
        errors += [RowError(1, c, "column is missing") for c in sorted(self.required - set(header))]
        if errors:
            self._failed = True
            raise CsvImportError(errors)
        self.header = header

    def _row(self, cells: list[str]) -> list[Record]:
        header = self.header
        assert header is not None
        if not any(c.strip() for c in cells):
            return []
        if len(cells) > len(header):
            return [RowError(self.number, "(row)", f"has {len(cells)} cells; the header has {len(header)}")]
        cells += [""] * (len(header) - len(cells))
        return [(self.number, {h: unescape_cell(c) for h, c in zip(header, cells, strict=True)})]
