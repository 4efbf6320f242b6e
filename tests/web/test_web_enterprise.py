"""Enterprises (issue 13) with three real nodes: a parent and two children. The parent adds
an existing partner to a child over their connection (a signed ``enterprise-partner``
message, the profile only); the child creates the account and its own invitation e-mail
arrives; the partner signs in on the child and creates a deal there; the parent holds
none of that deal's data. A child that has not marked the parent as its parent refuses."""

from __future__ import annotations

import re
from typing import Any

from refer_kit import connect
from test_web_deals import look, wait_for, workflow
from web_kit import choose_password, link_in, new_page, smtp_settings, text_of

from node.crm import partners, portal


async def all_text(node: Any) -> str:
    """Every text value in every table of a node's database, joined."""
    def read(conn: Any) -> str:
        out = []
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 (names from sqlite_master)
                out += [v if isinstance(v, str) else v.decode("utf-8", "replace") for v in row
                        if isinstance(v, (str, bytes))]
        return "\n".join(out)

    return await node.node.db.read(read)


async def outbox_state(node: Any, envelope_type: str) -> list[str]:
    rows = await node.node.db.read(lambda conn: conn.execute(
        "SELECT state FROM outbox WHERE type LIKE ? ORDER BY seq", (envelope_type + "/%",)).fetchall())
    return [r[0] for r in rows]


async def test_parent_adds_a_partner_to_a_child(node_factory, browser, smtp) -> None:
    parent = await node_factory("Summit")
    child = await node_factory("Harbour", **smtp_settings(smtp))
    other = await node_factory("Ridge", **smtp_settings(smtp))
    loans = await workflow(child, "Home loans", ("Lead", "Application"))
    await child.node.db.write(lambda conn: portal.save_settings(conn, portal.PortalSettings(
        loans["id"], True, True, frozenset(), "v1", "We pass the client's details to our broker.")))
    await parent.node.db.write(lambda conn: partners.create_partner(
        conn, partners.PartnerIn(name="Priya Accountant", email="priya@ledger.example", phone="+61 400 123 456"),
        [], added_by=None, now=parent.node.clock.now()))
    to_child = await connect(parent, child)
    to_other = await connect(parent, other)

    # each admin marks their end: the parent its two children, one child its parent
    admin = await new_page(browser)
    await choose_password(admin, parent.extra["password_link"])
    await admin.goto(parent.url + "/admin/enterprise")
    for name in ("Harbour", "Ridge"):
        await admin.get_by_label(f"What {name} is to us").select_option(label="Our child organisation")
        await admin.get_by_role("button", name=f"Save for {name}").click()
        assert f"{name} is our child organisation" in await admin.locator(".flash").inner_text()
    await look(admin, "enterprise-parent")
    child_admin = await new_page(browser)
    await choose_password(child_admin, child.extra["password_link"])
    await child_admin.goto(child.url + "/admin/enterprise")
    await child_admin.get_by_label("What Summit is to us").select_option(label="Our parent organisation")
    await child_admin.get_by_role("button", name="Save for Summit").click()
    assert "Summit is our parent organisation" in await child_admin.locator(".flash").inner_text()

    # the parent adds its existing partner to the child: the child's invitation arrives
    await admin.get_by_role("link", name="Show partners of Harbour").click()
    await admin.get_by_role("button", name="Add").last.click()  # the new-partner form, empty
    assert "Enter the name" in await admin.locator(".error-summary").inner_text()
    await look(admin, "enterprise-child-partners-errors")
    await admin.get_by_label("Partner", exact=True).select_option(label="Priya Accountant (priya@ledger.example)")
    await admin.get_by_role("button", name="Add").first.click()
    assert "on the way to Harbour" in await admin.locator(".flash").inner_text()
    invite = await smtp.wait_for("priya@ledger.example", "Harbour invites you to its partner portal")
    assert "Harbour" in text_of(invite) and "password" not in text_of(invite).split("Choose")[0].lower()
    link = link_in(invite, r"https?://\S+/partner/set-password/\S+")
    assert link.startswith(child.url)

    async def delivered() -> bool:
        return await outbox_state(parent, "enterprise-partner") == ["delivered"]

    await wait_for(delivered)
    await admin.reload()
    assert "Delivered" in await admin.get_by_role("region", name="Partners added to Harbour").inner_text()
    await look(admin, "enterprise-child-partners")

    # the partner signs in on the child and creates a deal there
    partner = await new_page(browser)
    await choose_password(partner, link)
    assert partner.url.startswith(child.url + "/partner/")
    await partner.get_by_role("link", name="Add new").click()
    await partner.get_by_label("First name").fill("Morgan")
    await partner.get_by_label("Last name").fill("Quietly")
    await partner.get_by_label("E-mail address").fill("morgan.quietly@client.example")
    await partner.get_by_label("Phone number").fill("+61 411 222 333")
    await partner.get_by_label("The client agreed to be contacted").check()
    await partner.get_by_role("button", name="Create deal").click()
    await partner.wait_for_url(re.compile(r".*/partner/deals/deal_\w+$"))
    deal_id = partner.url.rsplit("/", 1)[1]
    owner = (await child.api("GET", f"/api/v1/deals/{deal_id}"))["deal"]["owner_user_id"]
    assert owner == loans["owner_user_id"]  # the child's default workflow's owner

    # the parent holds none of the child's deal data
    held = await all_text(parent)
    for secret in ("Morgan", "Quietly", "morgan.quietly@client.example", "411 222 333", deal_id):
        assert secret not in held, secret

    # a child that has not marked the parent as its parent refuses: no account there
    await admin.goto(parent.url + f"/admin/enterprise/{to_other}/partners")
    await admin.get_by_label("Name").fill("Sam Newcomer")
    await admin.get_by_label("E-mail address").fill("sam@planners.example")
    await admin.get_by_label("Phone number").fill("0400 555 666")
    await admin.get_by_role("button", name="Add").last.click()

    async def refused() -> bool:
        return (await outbox_state(parent, "enterprise-partner"))[-1] == "failed"

    await wait_for(refused)
    error = await parent.node.db.read(lambda conn: conn.execute(
        "SELECT last_error FROM outbox WHERE type LIKE 'enterprise-partner/%' ORDER BY seq DESC").fetchone()[0])
    assert "direction_not_allowed" in error
    assert await other.node.db.read(partners.list_partners) == []
    assert not [m for m in smtp.messages if "sam@" in str(m["To"])]
    assert to_child != to_other
