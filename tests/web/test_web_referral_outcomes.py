"""The end of a received referral, in real Chromium between two real nodes: Harbour's owner
marks one referral won and another lost (with a reason) on its page, and each status
travels back to Acme, whose referral pages show it (the reason too)."""

from __future__ import annotations

from refer_kit import refer_by_api, referral_rows, setup_pair, signed_in, wait_for
from web_kit import check_page


async def test_mark_won_and_mark_lost_on_a_received_referral_travel_back(node_factory, browser, smtp) -> None:
    pair = await setup_pair(node_factory, smtp)
    a, b = pair.a, pair.b
    won = await refer_by_api(pair, "Purchase at 1 Quay St")
    lost = await refer_by_api(pair, "Purchase at 2 Quay St")

    async def landed() -> bool:
        return len(await referral_rows(b, "receiver")) == 2

    await wait_for(landed)
    owen = await signed_in(browser, pair.owen)
    for title in ("Purchase at 1 Quay St", "Purchase at 2 Quay St"):
        await owen.goto(b.url + "/referrals?side=received")
        await owen.get_by_role("link", name=title).click()
        await owen.get_by_role("button", name="Accept the referral").click()
        assert "Accepted" in await owen.inner_text(".flash")
        if title.startswith("Purchase at 1"):
            await check_page(owen, "referral-received-accepted")
            await owen.get_by_role("button", name="Mark won").click()
            assert "Marked won. Acme Mortgages is told." in await owen.inner_text(".flash")
            assert await owen.locator(".page-head .status").inner_text() == "Won"
        else:
            await owen.get_by_label("Or, why it was lost").fill("They bought through another agent.")
            await owen.get_by_role("button", name="Mark lost").click()
            assert "Marked lost. Acme Mortgages is told." in await owen.inner_text(".flash")
            assert await owen.locator(".page-head .status").inner_text() == "Lost"
        work = await owen.inner_text("section.work")
        assert "nothing more to do" in work and await owen.get_by_role("button", name="Mark won").count() == 0
    await check_page(owen, "referral-received-lost")

    # Acme's side: each referral's page shows what Harbour decided
    bea = await signed_in(browser, pair.bea)

    async def told(local_id: str, state: str) -> bool:
        await bea.goto(f"{a.url}/referrals/{local_id}")
        return await bea.locator(".page-head .status").inner_text() == state

    await wait_for(lambda: told(won, "Won"))
    assert "Won" in await bea.inner_text(".timeline")
    await wait_for(lambda: told(lost, "Lost"))
    timeline = await bea.inner_text(".timeline")
    assert "Lost at stage New referral: “They bought through another agent.”" in timeline, timeline
    await check_page(bea, "referral-sent-lost")
    # and the sent list, filtered by status, has each under its own
    await bea.goto(f"{a.url}/referrals?side=sent&status=won")
    rows = await bea.locator("table tbody").inner_text()
    assert "Purchase at 1 Quay St" in rows and "Purchase at 2 Quay St" not in rows
