"""A user's settings page in real Chromium, between two real nodes and a real SMTP server:
the mail choices a person saves there are the ones the node honours (a mail type they
untick does not arrive; one left ticked does, and ticking it again brings it back)."""

from __future__ import annotations

import asyncio

from refer_kit import refer_by_api, referral_rows, setup_pair, signed_in, wait_for
from web_kit import check_page

NEW_REFERRAL = "A referral I own arrives"
STATUS_UPDATE = "A referral I made changes status"


async def _save_choice(page, base_url: str, label: str, *, ticked: bool) -> None:
    await page.goto(base_url + "/settings")
    box = page.get_by_label(label)
    await (box.check() if ticked else box.uncheck())
    await page.get_by_role("button", name="Save e-mail choices").click()
    assert "Your e-mail choices are saved." in await page.inner_text(".flash")
    assert await page.get_by_label(label).is_checked() is ticked  # as saved, read back from the page


async def _mail_kinds(node) -> list[str]:
    return await node.node.db.read(lambda c: [r[0] for r in c.execute("SELECT kind FROM mail_queue ORDER BY rowid")])


async def test_a_mail_unticked_on_the_settings_page_does_not_arrive_and_a_ticked_one_does(
        node_factory, browser, smtp) -> None:
    pair = await setup_pair(node_factory, smtp)
    a, b = pair.a, pair.b
    # Owen, who owns what Harbour receives, unticks the new-referral mail
    owen = await signed_in(browser, pair.owen)
    await owen.goto(b.url + "/settings")
    for label in (NEW_REFERRAL, STATUS_UPDATE, "An organisation asks me to connect"):
        assert await owen.get_by_label(label).is_checked(), label  # every mail, until a person says
    assert await owen.get_by_label("A delivery has been failing", exact=False).count() == 0  # admins' only
    await check_page(owen, "settings")
    await _save_choice(owen, b.url, NEW_REFERRAL, ticked=False)
    assert await owen.get_by_label(STATUS_UPDATE).is_checked()  # the others are left as they were
    await check_page(owen, "settings-saved", phone_too=False)
    # Bea, who refers, keeps the status-update mail ticked (as her page shows)
    bea = await signed_in(browser, pair.bea)
    await bea.goto(a.url + "/settings")
    assert await bea.get_by_label(STATUS_UPDATE).is_checked()

    first = await refer_by_api(pair, "Purchase at 1 Quay St")

    async def landed(n: int) -> bool:
        return len(await referral_rows(b, "receiver")) == n

    await wait_for(lambda: landed(1))
    received = (await referral_rows(b, "receiver"))[0]
    await b.api("POST", f"/api/v1/referrals/{received['local_id']}/status", {"status": "accepted"})
    # the ticked one arrives: Bea is told her referral was accepted ...
    await smtp.wait_for("bea@acme.example", "Referral update from Harbour Realty: accepted")
    await asyncio.sleep(0.5)  # ... well after the offer landed, so Owen's mail would be here by now
    assert not [m for m in smtp.messages if "owen@harbour.example" in str(m["To"])]
    assert "new_referral" not in await _mail_kinds(b)  # not even queued: he turned it off
    assert (await a.api("GET", f"/api/v1/referrals/{first}"))["referral"]["state"] == "accepted"

    # ticked again on the page, the next referral's mail reaches him
    await _save_choice(owen, b.url, NEW_REFERRAL, ticked=True)
    await refer_by_api(pair, "Purchase at 2 Quay St")
    mail = await smtp.wait_for("owen@harbour.example", "New mortgage referral from Acme Mortgages")
    assert "Purchase at 2 Quay St" in str(mail.get_body(preferencelist=("plain",)).get_content())
    assert await _mail_kinds(b) == ["new_referral"]
