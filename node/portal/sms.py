"""Text messages: queued in the causing transaction (table ``sms_queue``), sent by a loop
through an HTTP gateway that speaks the Twilio Messages API, which many gateways emulate:

    POST {sms_gateway_url}/2010-04-01/Accounts/{sms_account}/Messages.json
    Authorization: Basic base64(sms_account:token)
    To=...&From=...&Body=...               (application/x-www-form-urlencoded)

A 2xx answer is sent; anything else (or no answer) is retried with backoff (30 s doubling
to an hour, with jitter) and given up after a day. A message carrying a secret (a
passcode) keeps its text only until it is sent or given up; once an hour, what was sent
``message_keep_days`` ago, or given up and queued that long ago, is deleted
(``node.storage.retention``). The log names a message by id and kind, never its number or
text. Credits are taken when a message is queued
(:func:`node.portal.settings.use_credit`), not here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp

from node.base.backoff import retry_delay_s
from node.base.clock import Clock
from node.base.config import Config
from node.base.ids import new_id
from node.base.logs import failure_fields, get_logger
from node.base.waits import woken
from node.storage.db import Database
from node.storage.retention import GIVEN_UP, Retention, done_messages
from protocol.models import format_ts, parse_ts

log = get_logger("node.sms")

GIVE_UP_AFTER = timedelta(days=1)
RETRY_BASE_S = 30.0
RETRY_CAP_S = 3600.0
WIPED = "(wiped: this text message carried a secret, kept only until it was sent)"


def enabled(config: Config) -> bool:
    return bool(config.sms_gateway_url and config.sms_account)


def enqueue(conn: sqlite3.Connection, *, kind: str, to_number: str, body: str, secret: bool,
            now: datetime) -> str:
    sms_id = new_id("sms", now)
    conn.execute("INSERT INTO sms_queue (id, kind, to_number, body, secret, created_at, next_attempt_at)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (sms_id, kind, to_number, body[:640], int(secret), format_ts(now), format_ts(now)))
    return sms_id


@dataclass(frozen=True)
class QueuedSms:
    id: str
    kind: str
    to_number: str
    body: str
    created_at: str
    attempts: int


def due(conn: sqlite3.Connection, now: datetime, limit: int = 20) -> list[QueuedSms]:
    rows = conn.execute("SELECT id, kind, to_number, body, created_at, attempts FROM sms_queue"
                        " WHERE sent_at IS NULL AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
                        (format_ts(now), limit))
    return [QueuedSms(**dict(r)) for r in rows]


def _wipe(conn: sqlite3.Connection, sms_id: str) -> None:
    conn.execute("UPDATE sms_queue SET body = ? WHERE id = ? AND secret = 1", (WIPED, sms_id))


#: Delete at most ``limit`` messages sent, or given up and queued, before ``before``; how many.
forget_old = done_messages("sms_queue")


def mark_sent(conn: sqlite3.Connection, sms_id: str, now: datetime) -> None:
    conn.execute("UPDATE sms_queue SET sent_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?",
                 (format_ts(now), sms_id))
    _wipe(conn, sms_id)


def mark_failed(conn: sqlite3.Connection, sms_id: str, error: str, retry_at: datetime | None) -> None:
    conn.execute("UPDATE sms_queue SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
                 (error[:300], format_ts(retry_at) if retry_at else GIVEN_UP, sms_id))
    if retry_at is None:
        _wipe(conn, sms_id)


async def post(config: Config, session: aiohttp.ClientSession, sms: QueuedSms) -> None:
    """Send one message to the gateway; raises unless it answers 2xx."""
    url = f"{config.sms_gateway_url.rstrip('/')}/2010-04-01/Accounts/{config.sms_account}/Messages.json"
    secret = base64.b64encode(f"{config.sms_account}:{config.sms_token()}".encode()).decode()
    form = {"To": sms.to_number, "From": config.sms_from or config.org_name[:11], "Body": sms.body}
    timeout = aiohttp.ClientTimeout(total=config.request_timeout_s)
    async with session.post(url, data=form, headers={"Authorization": f"Basic {secret}"}, timeout=timeout, allow_redirects=False) as answer:
        if not 200 <= answer.status < 300:
            raise RuntimeError(f"the SMS gateway answered HTTP {answer.status}")


class SmsSender:
    """The loop that empties the SMS queue; ``kick()`` wakes it at once."""

    def __init__(self, config: Config, db: Database, clock: Clock, *,
                 draw: Callable[[], float] = random.random) -> None:
        self.config, self.db, self.clock, self.draw = config, db, clock, draw
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.retention = Retention(db, clock, forget_old, keep=timedelta(days=config.message_keep_days),
                                   what="text messages")
        self.sent = 0
        self.failed = 0

    def kick(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        if enabled(self.config):
            self._task = asyncio.create_task(self._loop(), name="sms-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _loop(self) -> None:
        while True:
            try:
                while await self.send_due():
                    pass
                await self.retention.run()
            except Exception as exc:  # the database is failing: try again next round
                log.error("sms round failed", **failure_fields(exc))
            await woken(self._wake, self.config.outbox_poll_interval_s * 5)
            self._wake.clear()

    async def send_due(self) -> int:
        messages = await self.db.read(lambda conn: due(conn, self.clock.now()))
        for sms in messages:
            await self.send_one(sms)
        return len(messages)

    async def send_one(self, sms: QueuedSms) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            await post(self.config, self._session, sms)
        except Exception as exc:  # refused, unreachable, timed out
            now = self.clock.now()
            attempt = sms.attempts + 1
            give_up = now - parse_ts(sms.created_at) >= GIVE_UP_AFTER
            retry_at = None if give_up else now + timedelta(
                seconds=retry_delay_s(attempt, base_s=RETRY_BASE_S, cap_s=RETRY_CAP_S, draw=self.draw()))
            error = f"{type(exc).__name__}: {exc}"
            await self.db.write(lambda conn: mark_failed(conn, sms.id, error, retry_at))
            self.failed += 1
            log.warning("sms not sent", sms_id=sms.id, kind=sms.kind, attempt=attempt, given_up=give_up,
                        error=type(exc).__name__)
            return
        await self.db.write(lambda conn: mark_sent(conn, sms.id, self.clock.now()))
        self.sent += 1
        log.info("sms sent", sms_id=sms.id, kind=sms.kind)
