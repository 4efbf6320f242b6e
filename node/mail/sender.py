"""Sending what the mail queue holds: over SMTP (``aiosmtplib``) when ``smtp_host`` is
set, else as ``.eml`` files (mode 0600) in ``<data_dir>/mail-out``.

A failed attempt is retried with backoff (30 s doubling to an hour, with jitter); a mail
still failing after three days is given up. A down SMTP server delays mail and fails
nothing else: the action that queued it was committed long before. Once an hour the
sender deletes what was sent ``message_keep_days`` ago, and what was given up and queued
that long ago. The log names a mail by id and kind only, never its address or content.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Callable
from datetime import timedelta

from node.base.backoff import retry_delay_s
from node.base.clock import Clock
from node.base.config import Config
from node.base.logs import failure_fields, get_logger
from node.base.waits import woken
from node.mail import queue
from node.mail.mime import message_bytes
from node.storage.db import Database
from node.storage.retention import Retention
from protocol.models import parse_ts

log = get_logger("node.mail")

RETRY_BASE_S = 30.0
RETRY_CAP_S = 3600.0


def build_message(config: Config, mail: queue.Queued) -> bytes:
    return message_bytes(
        mail_id=mail.id, from_name=config.org_name, from_addr=config.from_address, to_name=mail.to_name,
        to_addr=mail.to_addr, subject=mail.subject, text=mail.text_body, html=mail.html_body,
        date=parse_ts(mail.created_at).strftime("%a, %d %b %Y %H:%M:%S +0000"))


async def deliver(config: Config, msg: bytes, to_addr: str, mail_id: str) -> str:
    """Send one message; how it went (``smtp`` or the .eml file's name). Raises on failure."""
    if not config.smtp_host:
        config.mail_dir.mkdir(mode=0o700, exist_ok=True)
        name = f"{mail_id}.eml"
        path = config.mail_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(msg)
        return name
    import aiosmtplib  # when there is an SMTP server to send to, not at start

    password = config.smtp_password()
    await aiosmtplib.send(
        msg,
        sender=config.from_address,
        recipients=[to_addr],
        hostname=config.smtp_host,
        port=config.smtp_port,
        use_tls=config.smtp_security == "tls",
        start_tls=config.smtp_security == "starttls",
        username=config.smtp_user or None,
        password=(password or None) if config.smtp_user else None,
        timeout=config.request_timeout_s,
    )
    return "smtp"


class MailSender:
    """The loop that empties the mail queue; ``kick()`` wakes it at once."""

    def __init__(self, config: Config, db: Database, clock: Clock, *,
                 draw: Callable[[], float] = random.random) -> None:
        self.config, self.db, self.clock, self.draw = config, db, clock, draw
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.retention = Retention(db, clock, queue.forget_old, keep=timedelta(days=config.message_keep_days),
                                   what="mail")
        self.sent = 0
        self.failed = 0

    def kick(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="mail-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                while await self.send_due():
                    pass
                await self.retention.run()
            except Exception as exc:  # the database is failing: try again next round
                log.error("mail round failed", **failure_fields(exc))
            await woken(self._wake, self.config.outbox_poll_interval_s * 5)
            self._wake.clear()

    async def send_due(self) -> int:
        """One round: try every mail that is due; how many were tried."""
        mails = await self.db.read(lambda conn: queue.due(conn, self.clock.now()))
        for mail in mails:
            await self.send_one(mail)
        return len(mails)

    async def send_one(self, mail: queue.Queued) -> None:
        try:
            sent_as = await deliver(self.config, build_message(self.config, mail), mail.to_addr, mail.id)
        except Exception as exc:  # SMTP refused, unreachable, timed out, or the folder is unwritable
            now = self.clock.now()
            attempt = mail.attempts + 1
            give_up = now - parse_ts(mail.created_at) >= queue.GIVE_UP_AFTER
            retry_at = None if give_up else now + timedelta(
                seconds=retry_delay_s(attempt, base_s=RETRY_BASE_S, cap_s=RETRY_CAP_S, draw=self.draw()))
            error = f"{type(exc).__name__}: {exc}"
            await self.db.write(lambda conn: queue.mark_failed(conn, mail.id, now, error, retry_at))
            self.failed += 1
            log.warning("mail not sent", mail_id=mail.id, kind=mail.kind, attempt=attempt, given_up=give_up,
                        error=type(exc).__name__)
            return
        await self.db.write(lambda conn: queue.mark_sent(conn, mail.id, self.clock.now(), sent_as))
        self.sent += 1
        log.info("mail sent", mail_id=mail.id, kind=mail.kind, via="smtp" if sent_as == "smtp" else "eml")
