"""Sessions, password links and lockouts at the exact edges of their times, on a real
migrated database: the one-second differences a browser test cannot see."""

from __future__ import annotations

from datetime import timedelta

from test_accounts_domain import T0, _db

from node.crm import accounts


def test_a_session_lives_until_its_idle_time_and_its_lifetime_and_no_longer(tmp_path) -> None:
    db = _db(tmp_path)
    limits = {"idle_s": 600, "absolute_s": 1800}
    try:
        sid = db.run(lambda conn: accounts.start_session(conn, "usr_1", T0))

        def caller(at, s=sid):
            return db.run(lambda conn: accounts.session_caller(conn, s, at, **limits))

        live = caller(T0 + timedelta(seconds=599))
        assert live is not None and live.stale
        assert (live.caller.id, live.caller.email, live.caller.name, live.caller.role) == (
            "usr_1", "bo@x.example", "Bo", "broker")
        record = db.run(lambda conn: accounts.signin_record(conn, " bo@x.example"))
        assert record is not None and record.caller == live.caller and record.active
        assert caller(T0 + timedelta(seconds=600)) is None  # idle for exactly idle_s: over
        fresh = caller(T0 + timedelta(seconds=59))
        assert fresh is not None and not fresh.stale  # touched less than a minute ago
        assert caller(T0 + timedelta(seconds=60)).stale
        for at in (500, 1000, 1500):  # in use all along...
            db.run(lambda conn, at=at: accounts.touch_session(conn, sid, T0 + timedelta(seconds=at)))
        assert caller(T0 + timedelta(seconds=1799)) is not None
        assert caller(T0 + timedelta(seconds=1800)) is None  # ...until exactly its lifetime
        # not a session id at all, or one too long: no look-up
        assert caller(T0, "x" + sid[1:]) is None and caller(T0, sid + "A" * 100) is None
    finally:
        db.close_sync()


def test_ending_sessions_ends_that_users_and_no_others(tmp_path) -> None:
    db = _db(tmp_path)
    limits = {"idle_s": 600, "absolute_s": 1800}
    try:
        db.run(lambda conn: conn.execute(
            "INSERT INTO users (id, email, name, role, active, created_at) VALUES ('usr_2', 'al@x.example', 'Al', "
            "'admin', 1, '2026-12-01T00:00:00Z')"))
        bo1, bo2, al = (db.run(lambda conn, u=u: accounts.start_session(conn, u, T0))
                        for u in ("usr_1", "usr_1", "usr_2"))
        db.run(lambda conn: accounts.end_session(conn, bo1, T0))
        assert db.run(lambda conn: accounts.session_caller(conn, bo1, T0, **limits)) is None
        assert db.run(lambda conn: accounts.session_caller(conn, bo2, T0, **limits)) is not None
        db.run(lambda conn: accounts.end_user_sessions(conn, "usr_1", T0))
        assert db.run(lambda conn: accounts.session_caller(conn, bo2, T0, **limits)) is None
        admin = db.run(lambda conn: accounts.session_caller(conn, al, T0, **limits))
        assert admin is not None and admin.caller.is_admin
        # a user made inactive has no session, even one not ended
        db.run(lambda conn: conn.execute("UPDATE users SET active = 0 WHERE id = 'usr_2'"))
        assert db.run(lambda conn: accounts.session_caller(conn, al, T0, **limits)) is None
    finally:
        db.close_sync()


def test_a_password_link_works_until_the_second_it_expires(tmp_path) -> None:
    db = _db(tmp_path)
    try:
        link = db.run(lambda conn: accounts.new_password_link(conn, "usr_1", "set", T0, 3600))
        holder = db.run(lambda conn: accounts.password_link_holder(conn, link, T0 + timedelta(seconds=3599)))
        assert holder is not None and (holder.user_id, holder.email, holder.name, holder.purpose) == (
            "usr_1", "bo@x.example", "Bo", "set")
        assert db.run(lambda conn: accounts.password_link_holder(conn, link, T0 + timedelta(seconds=3600))) is None
        db.run(lambda conn: conn.execute("UPDATE users SET active = 0 WHERE id = 'usr_1'"))
        assert db.run(lambda conn: accounts.password_link_holder(conn, link, T0)) is None
    finally:
        db.close_sync()


def test_failures_count_within_exactly_the_window_and_lock_at_exactly_the_limit(tmp_path) -> None:
    db = _db(tmp_path)
    rules = {"limit": 3, "window_s": 600, "lock_s": 900}
    try:
        def fail(at_s):
            return db.run(lambda conn: accounts.record_failure(conn, "bo@x.example", T0 + timedelta(seconds=at_s),
                                                              **rules))

        assert fail(0) is None and fail(599) is None
        assert fail(600) is None  # exactly window_s after the first: counting starts again
        assert fail(601) is None
        assert fail(1199) == T0 + timedelta(seconds=1199 + 900)  # the third within the window locks
        until = T0 + timedelta(seconds=2099)
        assert db.run(lambda conn: accounts.locked_until(conn, "bo@x.example", until - timedelta(seconds=1))) == until
        assert db.run(lambda conn: accounts.locked_until(conn, "bo@x.example", until)) is None
        assert db.run(lambda conn: accounts.unlock(conn, "bo@x.example")) is True
        assert db.run(lambda conn: accounts.unlock(conn, "bo@x.example")) is False  # nothing left to lift
    finally:
        db.close_sync()


def test_a_lock_starts_the_count_again_and_the_admins_see_who_is_locked(tmp_path) -> None:
    db = _db(tmp_path)
    rules = {"limit": 3, "window_s": 600, "lock_s": 100}
    try:
        def fail(at_s):
            return db.run(lambda conn: accounts.record_failure(conn, "bo@x.example", T0 + timedelta(seconds=at_s),
                                                              **rules))

        assert fail(0) is None and fail(1) is None and fail(2) is not None  # locked until 102
        locked = db.run(lambda conn: accounts.lockouts(conn, T0 + timedelta(seconds=50)))
        assert [(lk.email, lk.name, lk.locked_until) for lk in locked] == [
            ("bo@x.example", "Bo", T0 + timedelta(seconds=102))]
        assert db.run(lambda conn: accounts.lockouts(conn, T0 + timedelta(seconds=102))) == []
        # after the lock, still within the first failure's window: the count starts again
        assert fail(200) is None and fail(201) is None
        assert fail(202) is not None
    finally:
        db.close_sync()


def test_a_password_set_through_a_link_ends_the_users_sessions(tmp_path) -> None:
    db = _db(tmp_path)
    limits = {"idle_s": 600, "absolute_s": 1800}
    try:
        sid = db.run(lambda conn: accounts.start_session(conn, "usr_1", T0))
        link = db.run(lambda conn: accounts.new_password_link(conn, "usr_1", "reset", T0, 3600))
        assert db.run(lambda conn: accounts.use_password_link(conn, link, "$argon2id$x", T0)) is not None
        assert db.run(lambda conn: accounts.session_caller(conn, sid, T0, **limits)) is None
    finally:
        db.close_sync()
