"""The delivery sweep with a peer gone dark: what is queued for it waits in the database,
fails at its deadline a batch at a time (each referral marked failed), and a sweep with
nothing due writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from conftest import wait_for
from test_two_nodes import connect_by_invitation, referral_body

from node.base.clock import FakeClock
from node.federation import referrals
from node.storage import due
from protocol.messages import ReferralOffer


async def test_a_dark_peers_queue_fails_at_its_deadline_a_batch_at_a_time(node_factory) -> None:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    agency, broker = await node_factory("Agency", start=False), await node_factory("Broker", start=False)
    for n in (agency, broker):
        await n.start(clock=clock)
    cid, _ = await connect_by_invitation(agency, broker)
    await broker.stop()  # dark from now on
    count = due.OVERDUE_BATCH * 2 + 37
    body = referral_body(cid)
    node = agency.node

    def queue(conn, ctx):  # type: ignore[no-untyped-def]
        for i in range(count):
            offer = ReferralOffer.model_validate({**{k: v for k, v in body.items() if k != "connection_id"},
                                                  "connection_id": cid, "referral_id": f"rfl_dark_{i:05d}",
                                                  "sent_at": ctx.ts})
            referrals.send_offer(conn, ctx, offer)

    await node.transact(queue)

    async def pending() -> int:
        return await node.db.read(lambda c: c.execute(
            "SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0])

    assert await pending() == count
    clock.advance(3 * 24 * 3600 + 10)  # past every item's deadline
    # One sweep fails at most OVERDUE_BATCH of them (a small transaction, a bounded read).
    await node.delivery.tick()
    assert await pending() == count - due.OVERDUE_BATCH
    await wait_for(lambda: _none_pending(pending))
    failed = await node.db.read(lambda c: c.execute(
        "SELECT count(*) FROM referrals WHERE side = 'sender' AND state = 'failed'").fetchone()[0])
    assert failed == count
    # Nothing is due now: a sweep reads, and writes nothing.
    commits = node.db._started
    await node.delivery.tick()
    await node.delivery.tick()
    assert node.db._started == commits


async def _none_pending(pending) -> bool:  # type: ignore[no-untyped-def]
    return await pending() == 0


async def test_an_expired_invitation_is_expired_by_the_sweep_and_only_then_written(node_factory) -> None:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    broker = await node_factory("Broker", start=False)
    await broker.start(clock=clock)
    invite = await broker.api("POST", "/api/v1/invitations", {"name": "Agency"})
    node = broker.node
    commits = node.db._started
    await node.delivery.tick()
    assert node.db._started == commits  # nothing due
    clock.advance(node.config.invitation_ttl_s + 1)
    await node.delivery.tick()
    assert node.db._started == commits + 1
    listed = (await broker.api("GET", "/api/v1/invitations"))["invitations"]
    assert [(i["id"], i["state"]) for i in listed] == [(invite["invitation"]["id"], "expired")]
