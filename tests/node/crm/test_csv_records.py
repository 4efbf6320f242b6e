"""The CSV reader of imports, fed a file in pieces: the records do not depend on where the
pieces break, and its limits refuse a file as soon as it passes them."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crm.csv_records import CsvRecords, Record, unescape_cell
from node.crm.errors import CrmError, CsvImportError, RowError

COLUMNS = ("a", "b", "c")


def reader(**limits: int) -> CsvRecords:
    return CsvRecords(COLUMNS, set(), **({"max_rows": 10**6, "max_bytes": 1 << 30} | limits))


def read(data: bytes, cuts: list[int], **limits: int) -> list[Record]:
    """Feed ``data`` broken at ``cuts``; every record that comes out."""
    records = reader(**limits)
    out: list[Record] = []
    at = 0
    for cut in [*sorted(cuts), len(data)]:
        out += records.feed(data[at:cut])
        at = max(at, cut)
    return out + records.end()


def flat(records: list[Record]) -> list[object]:
    """Records with refusals as their errors, so that two lists compare."""
    return [r.errors if isinstance(r, CsvImportError) else r for r in records]


cell = st.text(alphabet=st.sampled_from(['x', 'é', '€', ',', '"', '\n', '\r', ' ', "'", '=']), max_size=6)
line_end = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A file of the three columns written by ``csv.writer`` (quoting what needs it),
    with blank rows, short rows and mixed line ends; sometimes with a BOM."""
    out = io.StringIO()
    end = draw(line_end)
    writer = csv.writer(out, lineterminator=end)
    writer.writerow(COLUMNS)
    for row in draw(st.lists(st.lists(cell, min_size=0, max_size=3), max_size=8)):
        writer.writerow(row)
    text = out.getvalue()
    if not draw(st.booleans()):
        text = text.removesuffix(end)  # no line end after the last row
    return ("\ufeff" if draw(st.booleans()) else "").encode() + text.encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(csv_files(), st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_the_records_do_not_depend_on_where_the_pieces_break(data: bytes, cuts: list[int]) -> None:
    whole = read(data, [])
    assert flat(read(data, cuts)) == flat(whole)
    assert flat(read(data, list(range(len(data))))) == flat(whole)  # a byte at a time
    # and they are what Python's csv module reads from the whole text, formula escapes undone
    rows = list(csv.reader(io.StringIO(data.decode("utf-8").removeprefix("\ufeff"), newline="")))
    assert whole == [
        (number, {k: unescape_cell(v) for k, v in zip(COLUMNS, cells + [""] * (3 - len(cells)), strict=True)})
        for number, cells in enumerate(rows[1:], start=2)
        if any(c.strip() for c in cells)
    ]


@pytest.mark.parametrize("piece", [1, 3, 64])
def test_a_quote_never_closed_is_refused_with_its_line_after_the_rows_before_it(piece: int) -> None:
    data = b'a,b\nx,y\n"open,z\nmore\n'
    records = read(data, list(range(piece, len(data), piece)))
    assert records == [(2, {"a": "x", "b": "y"}), records[-1]]
    assert records[-1].errors == [RowError(3, "(row)", "line 3 opens a quoted cell that is never closed")]


def test_more_rows_than_the_limit_are_refused_as_the_row_past_it_arrives() -> None:
    records = reader(max_rows=3)
    assert len(records.feed(b"a\n1\n2\n3\n")) == 3
    with pytest.raises(CrmError) as err:
        records.feed(b"4\n")  # whatever else the file holds is never read
    assert err.value.code == "too_large"
    assert err.value.message == "the file has more than 3 rows (csv_import_max_rows); split it"


def test_more_bytes_than_the_limit_are_refused_at_once() -> None:
    records = reader(max_bytes=10)
    records.feed(b"a\n12345\n")
    with pytest.raises(CrmError) as err:
        records.feed(b"678\n")
    assert err.value.code == "too_large" and "larger than 10 bytes" in err.value.message


def test_a_row_longer_than_the_limit_is_refused_without_waiting_for_its_end() -> None:
    records = reader(max_record_chars=100)
    assert records.feed(b'a,b\n1,2\n3,"') == [(2, {"a": "1", "b": "2"})]
    with pytest.raises(CrmError) as err:
        records.feed(b"x\n" * 60)  # a quote never closed swallows line after line
    assert err.value.code == "too_large"
    assert err.value.message.startswith("line 3 starts a row longer than 100 characters")
    records = reader(max_record_chars=100)
    with pytest.raises(CrmError):
        records.feed(b"a\n" + b"y" * 101)  # one line without an end


def test_text_that_is_not_utf8_is_refused_with_its_byte_across_pieces() -> None:
    data = "a\nCafé\n".encode() + b"Caf\xe9\n"
    for piece in (1, 2, 100):
        with pytest.raises(CrmError) as err:
            read(data, list(range(piece, len(data), piece)))
        assert err.value.message == "the file is not UTF-8 text (byte 11); save it as CSV UTF-8"


def test_a_bad_header_is_refused_before_any_row() -> None:
    with pytest.raises(CsvImportError) as err:
        reader().feed(b"a,d,a\n1,2,3\n")
    assert [(e.row, e.field) for e in err.value.errors] == [(1, "d"), (1, "a")]
    assert read(b"", [])[-1].errors == [RowError(1, "(header)", "the file is empty")]
