"""What the queues keep (node.storage.retention): a text message sent or given up is
deleted once ``message_keep_days`` have passed, in batches, at most once an hour; one
still being tried is kept. (The mail queue, through its sender's loop, is in
test_mail_queue.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from node.base.clock import FakeClock
from node.portal import sms
from node.storage.db import Database
from node.storage.retention import Retention

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def test_text_messages_done_with_are_deleted_in_batches_after_the_keep(tmp_path: Path) -> None:
    db = Database(tmp_path / "node.db")
    clock = FakeClock(START)
    try:
        def queue(conn) -> None:  # type: ignore[no-untyped-def]
            for i in range(5):
                sent = sms.enqueue(conn, kind="client_passcode", to_number=f"+6140000000{i}", body="Your code is 1",
                                   secret=True, now=START)
                sms.mark_sent(conn, sent, START + timedelta(minutes=1))
            gone = sms.enqueue(conn, kind="client_message", to_number="+61400000009", body="Hello",
                               secret=False, now=START)
            sms.mark_failed(conn, gone, "RuntimeError: the SMS gateway answered HTTP 400", None)
            sms.enqueue(conn, kind="client_message", to_number="+61400000010", body="Still trying",
                        secret=False, now=START)

        await db.write(queue)
        writes: list[int] = []

        def forget(conn, before, limit):  # type: ignore[no-untyped-def]
            writes.append(limit)
            return sms.forget_old(conn, before, limit)

        retention = Retention(db, clock, forget, keep=timedelta(days=30), what="text messages", batch=2)
        left = lambda: db.read(lambda c: [r[0] for r in c.execute("SELECT to_number FROM sms_queue ORDER BY id")])  # noqa: E731

        clock.advance(30 * 86400 + 1)  # sent a minute after START: not yet 30 days ago
        assert await retention.run() == 1 and len(await left()) == 6  # the given-up one (queued at START) went
        clock.advance(1800)
        assert await retention.run() == 0 and writes == [2]  # within the hour: not even looked at
        clock.advance(1800)
        assert await retention.run() == 5  # batches of 2: 2, 2, 1
        assert writes == [2, 2, 2, 2] and await left() == ["+61400000010"]
    finally:
        await db.close()
