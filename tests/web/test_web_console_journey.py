"""The console's whole journey in one browser session per person, in order, between two real
nodes and a real SMTP server: the eight steps issue 12 names, each done through the pages as
a person would. Setup that is not one of the steps (users, workflows, the receiver's inbound
settings) goes through the admin API. The separate page tests look at each step's details;
this one shows that the steps follow on from each other."""

from __future__ import annotations

import re

from refer_kit import client_deal, fill_referral, wait_for
from test_web_deal_files import BAR_RECORDER, bar_values, contacts_csv
from web_kit import check_page, choose_password, link_in, new_page, smtp_settings, text_of

ALLOWED = ["deal.title", "deal.amount", "contacts.first_name", "contacts.last_name", "contacts.email"]


async def _user(node, email: str, name: str) -> dict:
    answer = await node.api("POST", "/api/v1/users", {"email": email, "name": name, "role": "broker"}, expect=201)
    return {**answer["user"], "password_link": answer["password_link"]}


async def _workflow(node, name: str, stages: list[str], **extra) -> dict:
    admin = next(u["id"] for u in (await node.api("GET", "/api/v1/users"))["users"] if u["role"] == "admin")
    body = {"name": name, "owner_user_id": admin, "stage_names": stages, **extra}
    return (await node.api("POST", "/api/v1/workflows", body, expect=201))["workflow"]


async def test_the_console_journey_from_invitation_to_report_and_import(node_factory, browser, smtp) -> None:
    a = await node_factory("Acme", org_name="Acme Mortgages", **smtp_settings(smtp))
    b = await node_factory("Harbour", org_name="Harbour Realty", **smtp_settings(smtp))
    home_loans = await _workflow(a, "Home loans", ["Lead", "Qualified", "Settled"])
    buyers = await _workflow(b, "Referred buyers", ["New referral", "Contacted", "Viewing", "Sold"],
                             outcomes={"Sold": "won"})
    bea = await _user(a, "bea@acme.example", "Bea Broker")
    owen = await _user(b, "owen@harbour.example", "Owen Owner")

    # 1. A's admin signs in (the first admin chooses a password from the link `init` printed)
    admin_a = await new_page(browser)
    await choose_password(admin_a, a.extra["password_link"])
    assert await admin_a.get_by_role("heading", level=1).count() == 1
    assert "Sign out" in await admin_a.inner_text("header")

    # 2. ... invites Harbour by e-mail; the mail with the URL and key arrives
    await admin_a.get_by_role("link", name="Connections").click()
    await admin_a.get_by_role("link", name="Invite an organisation").click()
    await admin_a.get_by_label("Organisation's name").fill("Harbour Realty")
    await admin_a.get_by_label("Referrals", exact=True).select_option(label="We send them referrals")
    await admin_a.get_by_role("button", name="Make the invitation").click()
    key = await admin_a.get_by_label("Referral key").input_value()
    await admin_a.get_by_label("Their admin's name").fill("Hana Harbour")
    await admin_a.get_by_label("Their admin's e-mail address").fill(b.extra["admin_email"])
    await admin_a.get_by_role("button", name="Send by e-mail").click()
    assert "on its way to Hana Harbour" in await admin_a.inner_text(".flash")
    mail = await smtp.wait_for(b.extra["admin_email"], "Acme Mortgages invites you")
    fp_a = (await a.api("GET", "/api/v1/node"))["fingerprint"]
    assert key in text_of(mail) and fp_a in text_of(mail)

    # 3. B's admin connects through the page, after comparing the fingerprints
    admin_b = await new_page(browser)
    await choose_password(admin_b, b.extra["password_link"])
    await admin_b.goto(b.url + "/connections/connect")
    await admin_b.get_by_label("Referral URL").fill(link_in(mail, r"http://\S+/refnode/v1/invitations/\S+"))
    await admin_b.get_by_label("Referral key").fill(re.search(r"rnk1_\S+", text_of(mail)).group(0))
    await admin_b.get_by_role("button", name="Continue").click()
    assert await admin_b.get_by_role("heading", level=1).inner_text() == "Is this Acme Mortgages?"
    their = admin_b.locator("section", has=admin_b.get_by_role("heading", name="Their node"))
    assert fp_a in await their.inner_text()  # the same fingerprint as the mail's
    await admin_b.get_by_role("button", name="Confirm and connect").click()
    cid = admin_b.url.rsplit("/", 1)[1]

    async def active() -> bool:
        for node in (a, b):
            listed = (await node.api("GET", "/api/v1/connections"))["connections"]
            if not any(c["id"] == cid and c["state"] == "active" for c in listed):
                return False
        return True

    await wait_for(active)
    await b.api("PATCH", f"/api/v1/connections/{cid}/settings", {"inbound": {
        "workflow_id": buyers["id"], "stage_id": buyers["stages"][0]["id"],
        "assignment": {"rule": "fixed", "user_id": owen["id"]}}})
    await a.api("PATCH", f"/api/v1/connections/{cid}/settings",
                {"outbound": {"referral_type": "mortgage", "allowed_fields": ALLOWED}})

    # 4. a broker at A refers from the deal page, with consent and two chosen fields
    deal_id, _ = await client_deal(a, home_loans, bea["id"])
    broker = await new_page(browser)
    await choose_password(broker, bea["password_link"])
    await broker.goto(f"{a.url}/deals/{deal_id}")
    await broker.get_by_role("link", name="Refer this deal").first.click()
    await fill_referral(broker, fields=("First name", "E-mail address"))
    await broker.get_by_role("button", name="Preview what will be sent").click()
    travels = await broker.inner_text("section.travels")
    assert "First name\nJo" in travels and "jo@example.com" in travels and "Citizen" not in travels
    await broker.get_by_role("button", name="Continue").click()
    await broker.get_by_role("button", name="Send the referral").click()
    await broker.wait_for_url(re.compile(r".*/referrals/ref_[^/]+$"))
    local_id = broker.url.rsplit("/", 1)[1]

    # 5. the owner at B is mailed, sees it on Home, accepts it and moves the deal two stages
    new = await smtp.wait_for("owen@harbour.example", "New mortgage referral from Acme Mortgages")
    owner = await new_page(browser)
    await choose_password(owner, owen["password_link"])
    waiting = owner.locator("section[aria-labelledby='h-received']")
    assert "Purchase at 12 Harbour St" in await waiting.inner_text()
    await check_page(owner, "journey-home-received")
    await waiting.get_by_role("link", name=re.compile("Purchase at 12 Harbour St")).first.click()
    assert owner.url == link_in(new, re.escape(b.url) + r"/referrals/\S+")
    await owner.get_by_role("button", name="Accept the referral").click()
    for stage in ("Contacted", "Viewing"):
        await owner.get_by_label("Move the deal to stage").select_option(label=stage)
        await owner.get_by_role("button", name="Move", exact=True).click()
        assert f"Moved to stage {stage}." in await owner.inner_text(".flash")

    # 6. A's referral page: the timeline with B's updates, and the receipt verified
    async def loop_closed() -> bool:
        await broker.goto(f"{a.url}/referrals/{local_id}")
        return "at stage Viewing" in await broker.inner_text(".timeline")

    await wait_for(loop_closed)
    timeline = await broker.inner_text(".timeline")
    for step in ("Sent to Harbour Realty", "Delivered", "Accepted", "at stage Contacted", "at stage Viewing"):
        assert step in timeline, (step, timeline)
    assert "Verified" in await broker.inner_text("section.receipt")

    # 7. the report shows the referral, with its chart
    await admin_a.goto(a.url + "/")
    assert await admin_a.get_by_role("heading", name="First steps").count() == 0  # set up: a workflow, a connection
    await admin_a.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    sent = await admin_a.locator(".card.total").first.inner_text()
    assert "Sent by us" in sent and "1 referral" in sent
    chart = admin_a.get_by_role("img", name="Referrals per month")
    assert await chart.locator("rect").count() >= 1
    row = await admin_a.get_by_role("region", name="Referrals by connection").get_by_role(
        "row", name="Harbour Realty").inner_text()
    assert re.sub(r"\s+", " ", row).strip().startswith("Harbour Realty 1")
    await check_page(admin_a, "journey-report")

    # 8. a CSV import of 5,000 contacts shows its progress and finishes
    await admin_a.add_init_script(BAR_RECORDER)  # what the bar showed, kept across the reload
    await admin_a.goto(a.url + "/deals")
    await admin_a.get_by_role("link", name="Import", exact=True).click()
    await admin_a.get_by_role("radio", name="Contacts").check()
    await admin_a.get_by_label("CSV file").set_input_files({"name": "clients.csv", "mimeType": "text/csv",
                                                            "buffer": contacts_csv(5000)})
    await admin_a.get_by_role("button", name="Import").click()
    await admin_a.wait_for_url(re.compile(r".*/deals/import/[0-9a-f]{32}$"))
    await admin_a.get_by_text("5,000 contacts imported.").wait_for(timeout=60_000)
    # the outcome replaces the bar, which was shown part-way before it
    assert await admin_a.locator("progress#import-bar").count() == 0
    assert await admin_a.locator("#import-status.outcome-done").count() == 1
    shown = await bar_values(admin_a)
    assert any(v["value"] < v["max"] for v in shown), shown
    contacts = await a.node.db.read(lambda conn: conn.execute("SELECT count(*) FROM contacts").fetchone()[0])
    assert contacts == 5001  # the referred client's, and the 5,000 imported
