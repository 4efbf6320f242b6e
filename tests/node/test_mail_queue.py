"""The mail queue: mail survives a restart, a down SMTP server delays mail without
failing what caused it, and with no SMTP server mail becomes .eml files."""

from __future__ import annotations

import email
import email.policy
import stat
from datetime import UTC, datetime

from aiosmtpd.controller import Controller
from conftest import free_port, wait_for
from web_kit import Mailbox

from node.base.clock import FakeClock


async def _queue(running) -> list[dict]:
    return await running.node.db.read(lambda conn: [dict(r) for r in conn.execute(
        "SELECT kind, to_addr, attempts, last_error, sent_at, sent_as FROM mail_queue ORDER BY id")])


async def test_down_smtp_delays_mail_and_a_restart_loses_none(node_factory) -> None:
    port = free_port()  # nothing listens here yet
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    a = await node_factory("Acme", start=False, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
    await a.start(clock=clock)
    # the action succeeds although the mail cannot go
    made = await a.api("POST", "/api/v1/users", {"email": "bo@acme.example", "name": "Bo", "send_email": True})
    assert made["password_link"].startswith(a.url + "/set-password/rnp_")

    async def tried() -> bool:
        rows = await _queue(a)
        return bool(rows) and rows[0]["attempts"] >= 1

    await wait_for(tried)
    (row,) = await _queue(a)
    assert row["sent_at"] is None and row["last_error"]  # e.g. "SMTPConnectError: ... refused"
    await a.stop()  # the node stops with the mail unsent

    box = Mailbox("127.0.0.1", port)
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        await a.start(clock=clock)
        clock.advance(3600)  # past the retry delay
        mail = await box.wait_for("bo@acme.example", "Set your password")
        assert made["password_link"] in mail.get_body(preferencelist=("plain",)).get_content()

        async def recorded() -> bool:  # the node writes it down once the server has taken it
            return (await _queue(a))[0]["sent_at"] is not None

        await wait_for(recorded)
        (row,) = await _queue(a)
        assert row["sent_as"] == "smtp" and row["attempts"] >= 2
    finally:
        controller.stop()
    assert len(box.messages) == 1  # sent once


async def test_without_smtp_mail_is_written_as_eml_files(node_factory) -> None:
    a = await node_factory("Acme")
    await a.api("POST", "/api/v1/users", {"email": "bo@acme.example", "name": "Bo", "send_email": True})
    # no SMTP server: the link is still returned to the admin, and the mail is a file
    out = a.config.mail_dir

    async def written() -> bool:  # the file, and the queue's record of it (committed just after)
        return out.is_dir() and any(out.glob("*.eml")) and (await _queue(a))[0]["sent_as"] is not None

    await wait_for(written)
    (path,) = list(out.glob("*.eml"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == "Bo <bo@acme.example>" and "Set your password" in message["Subject"]
    assert message.get_body(preferencelist=("html",)) is not None
    (row,) = await _queue(a)
    assert row["sent_as"] == path.name


async def test_a_user_who_turned_a_mail_off_does_not_get_it(node_factory) -> None:
    from node.mail import queue

    a = await node_factory("Acme")
    users = (await a.api("GET", "/api/v1/users"))["users"]
    admin = users[0]["id"]
    config, now = a.config, a.node.clock.now()

    def choose_and_send(conn):
        queue.set_mail_choices(conn, admin, {"status_update"})
        return (queue.enqueue_for_user(conn, config, admin, "new_referral", {}, now),
                queue.mail_choices(conn, admin))

    sent, choices = await a.node.db.write(choose_and_send)
    assert sent is None
    assert choices["status_update"] and not choices["new_referral"]


async def test_smtp_login_reads_the_password_from_a_0600_file_only(node_factory, tmp_path) -> None:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    seen: list[tuple[str, str]] = []

    def check(server, session, envelope, mechanism, data):
        assert isinstance(data, LoginPassword)
        seen.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=data.password == b"s3cret-smtp")

    port = free_port()
    box = Mailbox("127.0.0.1", port)
    controller = Controller(box, hostname="127.0.0.1", port=port, authenticator=check, auth_require_tls=False)
    controller.start()
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret-smtp\n")
    secret.chmod(0o644)
    try:
        clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
        a = await node_factory("Acme", start=False, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
                               smtp_user="relay", smtp_password_file=str(secret))
        await a.start(clock=clock)
        await a.api("POST", "/api/v1/users", {"email": "bo@acme.example", "name": "Bo", "send_email": True})

        async def refused() -> bool:
            rows = await _queue(a)
            return bool(rows) and bool(rows[0]["last_error"])

        await wait_for(refused)
        assert "chmod 600" in (await _queue(a))[0]["last_error"] and not seen  # never read, never sent
        secret.chmod(0o600)
        clock.advance(3600)
        await box.wait_for("bo@acme.example", "Set your password")
        assert seen == [("relay", "s3cret-smtp")]
    finally:
        controller.stop()


async def test_mail_sent_or_given_up_is_deleted_after_message_keep_days(node_factory) -> None:
    from node.mail import queue

    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    a = await node_factory("Acme", start=False, message_keep_days=30)
    await a.start(clock=clock)
    await a.api("POST", "/api/v1/users", {"email": "bo@acme.example", "name": "Bo", "send_email": True})

    async def sent() -> bool:
        return [r["sent_at"] is not None for r in await _queue(a)] == [True]

    await wait_for(sent)
    config, started = a.config, clock.now()

    def queue_two(conn) -> tuple[str, str]:  # one given up now, one whose tries still go on
        given_up = queue.enqueue(conn, config, kind="test", to_addr="gone@acme.example", to_name="",
                                 context={"sent_by": "Acme Admin"}, now=started)
        queue.mark_failed(conn, given_up, started, "SMTPRecipientsRefused", None)
        trying = queue.enqueue(conn, config, kind="test", to_addr="later@acme.example", to_name="",
                               context={"sent_by": "Acme Admin"}, now=started)
        conn.execute("UPDATE mail_queue SET attempts = 5, next_attempt_at = ? WHERE id = ?",
                     ("9000-01-01T00:00:00Z", trying))  # due long after: a restart brings it back
        return given_up, trying

    await a.node.db.write(queue_two)

    async def swept_at(moment: datetime) -> None:  # the sender's next round, and its retention
        async def ran() -> bool:
            return a.node.mail.retention.last_run == moment

        a.node.mail.kick()
        await wait_for(ran)

    clock.advance(29 * 86400)
    await swept_at(clock.now())
    assert [r["to_addr"] for r in await _queue(a)] == ["bo@acme.example", "gone@acme.example",
                                                       "later@acme.example"]  # 29 days: all kept
    clock.advance(2 * 86400)
    await swept_at(clock.now())
    assert [r["to_addr"] for r in await _queue(a)] == ["later@acme.example"]  # still being tried: kept
