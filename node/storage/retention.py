"""Deleting, now and then, the rows a queue no longer needs: the e-mail and text messages
sent ``message_keep_days`` ago, or given up and queued that long ago (``node.mail.queue``,
``node.portal.sms``). They carry names and deal titles, and a queue kept for years would
also make every count of it (the metrics' scrape) read years of rows.

Runs from the loop that empties the queue, at most once an hour, a batch a transaction, as
a background write (it does not count as the node's activity).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta

from node.base.clock import Clock
from node.base.logs import get_logger
from node.storage.db import Database
from protocol.models import format_ts

log = get_logger("node.db")

#: ``forget(conn, before, limit)``: delete at most ``limit`` rows done with before
#: ``before``; how many.
Forget = Callable[[sqlite3.Connection, datetime, int], int]

#: A message queue's ``next_attempt_at`` once the message is given up: never.
GIVEN_UP = "9999-12-31T00:00:00Z"


def done_messages(table: str) -> Forget:
    """The ``forget`` of a message queue (``mail_queue``, ``sms_queue``: each row with its
    ``created_at``, ``sent_at``, and ``next_attempt_at`` :data:`GIVEN_UP` once given up):
    the messages sent before ``before``, or given up and queued before it. One still being
    tried is kept."""
    sql = (f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table}"  # noqa: S608 (our table names)
           " WHERE sent_at < ? OR (sent_at IS NULL AND next_attempt_at = ? AND created_at < ?) LIMIT ?)")

    def forget(conn: sqlite3.Connection, before: datetime, limit: int) -> int:
        cut = format_ts(before)
        return int(conn.execute(sql, (cut, GIVEN_UP, cut, limit)).rowcount)

    return forget


class Retention:
    """Deletes through ``forget`` what is older than ``keep``, at most once every ``every``."""

    def __init__(self, db: Database, clock: Clock, forget: Forget, *, keep: timedelta, what: str,
                 every: timedelta = timedelta(hours=1), batch: int = 500) -> None:
        self.db, self.clock, self.forget = db, clock, forget
        self.keep, self.what, self.every, self.batch = keep, what, every, batch
        #: When it last ran to the end (None: not yet).
        self.last_run: datetime | None = None

    async def run(self) -> int:
        """Delete what is due, unless this ran less than ``every`` ago; how many rows."""
        now = self.clock.now()
        if self.last_run is not None and now - self.last_run < self.every:
            return 0
        before, total = now - self.keep, 0
        while deleted := await self.db.write(lambda conn: self.forget(conn, before, self.batch), background=True):
            total += deleted
            if deleted < self.batch:
                break
        self.last_run = now  # after: a round the database failed is tried again the next time
        if total:
            log.info("old rows deleted", what=self.what, count=total, kept_days=self.keep.days)
        return total
