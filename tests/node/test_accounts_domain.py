"""Sign-in lockouts, password links and session ids, at the domain level, on a real migrated database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from node.crm import accounts
from node.storage.db import Database

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _db(tmp_path):
    db = Database(tmp_path / "node.db")
    db.run(lambda conn: conn.execute(
        "INSERT INTO users (id, email, name, role, active, created_at) VALUES ('usr_1', 'bo@x.example', 'Bo', "
        "'broker', 1, '2026-12-01T00:00:00Z')"))
    return db


def test_failures_lock_only_within_the_window_and_the_lock_ends(tmp_path) -> None:
    db = _db(tmp_path)
    rules = {"limit": 3, "window_s": 600, "lock_s": 900}
    try:
        def fail(at):
            return db.run(lambda conn: accounts.record_failure(conn, "Bo@x.example", at, **rules))

        assert fail(T0) is None and fail(T0 + timedelta(seconds=300)) is None
        # the third failure comes after the window: counting starts again
        assert fail(T0 + timedelta(seconds=601)) is None
        assert fail(T0 + timedelta(seconds=700)) is None
        until = fail(T0 + timedelta(seconds=800))
        assert until == T0 + timedelta(seconds=800 + 900)
        assert db.run(lambda conn: accounts.locked_until(conn, "bo@x.example", T0 + timedelta(seconds=1000))) == until
        assert db.run(lambda conn: accounts.locked_until(conn, "bo@x.example", until)) is None  # over
        assert [lk.name for lk in db.run(lambda conn: accounts.lockouts(conn, T0 + timedelta(seconds=900)))] == ["Bo"]
        assert db.run(lambda conn: accounts.unlock(conn, "bo@x.example")) is True
        assert db.run(lambda conn: accounts.locked_until(conn, "bo@x.example", T0 + timedelta(seconds=1000))) is None
    finally:
        db.close_sync()


def test_a_password_link_works_once_until_it_expires_and_a_newer_one_replaces_it(tmp_path) -> None:
    db = _db(tmp_path)
    try:
        old = db.run(lambda conn: accounts.new_password_link(conn, "usr_1", "set", T0, 3600))
        new = db.run(lambda conn: accounts.new_password_link(conn, "usr_1", "reset", T0, 3600))
        assert db.run(lambda conn: accounts.password_link_holder(conn, old, T0)) is None
        holder = db.run(lambda conn: accounts.password_link_holder(conn, new, T0))
        assert holder is not None and holder.purpose == "reset" and holder.email == "bo@x.example"
        assert db.run(lambda conn: accounts.password_link_holder(conn, new, T0 + timedelta(seconds=3600))) is None
        assert db.run(lambda conn: accounts.use_password_link(conn, new, "$argon2id$x", T0)) is not None
        assert db.run(lambda conn: accounts.use_password_link(conn, new, "$argon2id$y", T0)) is None
        stored = db.run(lambda conn: conn.execute("SELECT token_hash FROM password_links").fetchall())
        assert all(new not in row[0] and old not in row[0] for row in stored)  # hashes only
    finally:
        db.close_sync()


def test_a_session_id_and_a_password_link_are_their_prefix_and_256_random_bits(tmp_path) -> None:
    """What a browser holds or a mail carries: the prefix, then 32 random bytes in base64url
    (43 characters), new each time."""
    db = _db(tmp_path)
    try:
        secrets = [db.run(lambda conn: accounts.start_session(conn, "usr_1", T0)) for _ in range(2)]
        secrets += [db.run(lambda conn: accounts.new_password_link(conn, "usr_1", "set", T0, 3600)) for _ in range(2)]
        assert [re.fullmatch(r"(rns_|rnp_)[A-Za-z0-9_-]{43}", s) is not None for s in secrets] == [True] * 4
        assert [s[:4] for s in secrets] == ["rns_", "rns_", "rnp_", "rnp_"] and len(set(secrets)) == 4
    finally:
        db.close_sync()
