"""The check ``refnode serve`` makes before it starts (node.storage.integrity), on real
SQLite files: whole ones pass, damaged ones are named with what quick_check found."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from node.storage.integrity import DatabaseDamaged, check_database


def make(path: Path, rows: int = 5000) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("CREATE INDEX t_v ON t (v)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"value {i:06d} " * 4,) for i in range(rows)])
    conn.commit()
    conn.close()


def test_a_whole_database_and_a_missing_one_pass(tmp_path):
    check_database(tmp_path / "none.db")
    make(tmp_path / "whole.db")
    check_database(tmp_path / "whole.db")


def test_cells_overwritten_in_a_page_are_found_and_quoted(tmp_path):
    db = tmp_path / "damaged.db"
    make(db)
    size = db.stat().st_size
    with open(db, "r+b") as fh:  # the cell pointers of a page in the middle of the table
        fh.seek((size // 4096 // 2) * 4096 + 12)
        fh.write(b"\x0f\xf0" * 40)
    with pytest.raises(DatabaseDamaged) as damaged:
        check_database(db)
    message = str(damaged.value)
    assert "PRAGMA quick_check" in message and str(db) in message and "refnode restore" in message


def test_a_file_that_is_no_database_is_named(tmp_path):
    db = tmp_path / "junk.db"
    db.write_bytes(b"this is not an SQLite file at all" * 200)
    with pytest.raises(DatabaseDamaged) as damaged:
        check_database(db)
    assert "refnode restore" in str(damaged.value)
