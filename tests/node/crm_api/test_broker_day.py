"""A broker's day through the admin API of a real node: a workflow and its stages,
contacts, a deal moved along, notes, documents, filtered lists; then the deals go to
another node as CSV and come out the same."""

from __future__ import annotations

from typing import Any

from .conftest import Csv, add_user, call, token_for

JO = {
    "first_name": "Jo", "last_name": "Citizen", "email": "jo@example.com", "phone": "+61 400 000 000",
    "address": {"line1": "12 Harbour St", "locality": "Sydney", "country": "AU"},
    "date_of_birth": "1988-04-02", "custom_fields": {"favourite colour": "teal"},
}  # fmt: skip
SAM = {"first_name": "Sam", "last_name": "Rivers", "email": "sam@example.com"}
SHA = "ab" * 32


def names(workflow: dict[str, Any]) -> list[str]:
    assert [s["position"] for s in workflow["stages"]] == list(range(len(workflow["stages"])))
    return [s["name"] for s in workflow["stages"]]


def stage_id(workflow: dict[str, Any], name: str) -> str:
    return next(s["id"] for s in workflow["stages"] if s["name"] == name)


async def test_a_brokers_day_and_csv_to_another_node(node_factory):
    a = await node_factory("Harbour")
    b = await node_factory("Summit")
    ann_id = await add_user(a, "ann@harbour.example", "Ann Broker")
    ann = await token_for(a, ann_id)

    async def as_ann(method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        return await a.api(method, path, body, token=ann, expect=expect)

    # The admin sets up the workflow.
    wf = (
        await a.api(
            "POST",
            "/api/v1/workflows",
            {
                "name": "Home loans",
                "owner_user_id": ann_id,
                "stage_names": ["New", "Lodged", "Settled"],
            },
            expect=201,
        )
    )["workflow"]
    assert names(wf) == ["New", "Lodged", "Settled"] and wf["owner_user_id"] == ann_id
    wid = wf["id"]
    wf = (
        await a.api(
            "POST",
            f"/api/v1/workflows/{wid}/stages",
            {"name": "Approved", "position": 2},
            expect=201,
        )
    )["workflow"]
    assert names(wf) == ["New", "Lodged", "Approved", "Settled"]
    wf = (
        await a.api(
            "PATCH", f"/api/v1/stages/{stage_id(wf, 'Lodged')}", {"name": "Application lodged"}
        )
    )["workflow"]
    assert names(wf) == ["New", "Application lodged", "Approved", "Settled"]
    wf = (
        await a.api("POST", f"/api/v1/workflows/{wid}/stages", {"name": "Valuation"}, expect=201)
    )["workflow"]
    order = [
        stage_id(wf, n) for n in ("New", "Valuation", "Application lodged", "Approved", "Settled")
    ]
    wf = (await a.api("POST", f"/api/v1/workflows/{wid}/stages/order", {"stage_ids": order}))[
        "workflow"
    ]
    assert names(wf) == ["New", "Valuation", "Application lodged", "Approved", "Settled"]
    wf = (await a.api("DELETE", f"/api/v1/stages/{stage_id(wf, 'Valuation')}"))["workflow"]
    assert names(wf) == ["New", "Application lodged", "Approved", "Settled"]
    wf = (await a.api("PATCH", f"/api/v1/workflows/{wid}", {"name": "Residential"}))["workflow"]
    assert wf["name"] == "Residential" and names(wf) == [
        "New",
        "Application lodged",
        "Approved",
        "Settled",
    ]
    assert (await as_ann("GET", "/api/v1/workflows"))["workflows"] == [wf]
    assert (await as_ann("GET", f"/api/v1/workflows/{wid}"))["workflow"] == wf

    # Ann records her clients.
    jo = (await as_ann("POST", "/api/v1/contacts", JO, expect=201))["contact"]
    sam = (await as_ann("POST", "/api/v1/contacts", SAM, expect=201))["contact"]
    assert jo["address"]["line1"] == "12 Harbour St" and jo["custom_fields"] == {
        "favourite colour": "teal"
    }
    jo = (await as_ann("PATCH", f"/api/v1/contacts/{jo['id']}", {"phone": "+61 400 111 222"}))[
        "contact"
    ]
    assert jo["phone"] == "+61 400 111 222" and jo["email"] == "jo@example.com"
    assert (await as_ann("GET", f"/api/v1/contacts/{jo['id']}"))["contact"] == jo
    found = (await as_ann("GET", "/api/v1/contacts?q=citiz"))["contacts"]
    assert [c["id"] for c in found] == [jo["id"]]
    page = await as_ann("GET", "/api/v1/contacts?limit=1&offset=1")
    assert [c["id"] for c in page["contacts"]] == [sam["id"]] and page["limit"] == 1

    # A deal, its people, its progress.
    deal = (
        await as_ann(
            "POST",
            "/api/v1/deals",
            {
                "title": "Purchase at 12 Harbour St",
                "deal_type": "home-loan",
                "amount": "650000.00",
                "currency": "AUD",
                "workflow_id": wid,
                "stage_id": stage_id(wf, "New"),
                "owner_user_id": ann_id,
                "folder": "2026",
                "source": "Walk-in",
                "labels": ["vip"],
                "contacts": [{"contact_id": jo["id"], "role": "primary"}],
            },
            expect=201,
        )
    )["deal"]
    did = deal["id"]
    assert (
        deal["origin"] == "local"
        and deal["referral"] is None
        and deal["stage_id"] == stage_id(wf, "New")
    )
    deal = (
        await as_ann(
            "POST",
            f"/api/v1/deals/{did}/contacts",
            {"contact_id": sam["id"], "role": "co-applicant"},
        )
    )["deal"]
    assert deal["contacts"] == [
        {"contact_id": jo["id"], "role": "primary"},
        {"contact_id": sam["id"], "role": "co-applicant"},
    ]
    deal = (
        await as_ann(
            "PATCH",
            f"/api/v1/deals/{did}",
            {"summary": "First home; pre-approved elsewhere.", "labels": ["vip", "first-home"]},
        )
    )["deal"]
    assert deal["labels"] == ["vip", "first-home"] and deal["title"] == "Purchase at 12 Harbour St"
    deal = (
        await as_ann(
            "POST", f"/api/v1/deals/{did}/move", {"stage_id": stage_id(wf, "Application lodged")}
        )
    )["deal"]
    assert deal["stage_id"] == stage_id(wf, "Application lodged") and deal["workflow_id"] == wid
    assert (await as_ann("GET", f"/api/v1/deals/{did}"))["deal"] == deal

    await as_ann(
        "POST", f"/api/v1/deals/{did}/notes", {"body": "Client is anxious about rates."}, expect=201
    )
    about_sam = (
        await as_ann(
            "POST",
            f"/api/v1/deals/{did}/notes",
            {"body": "Sam is self-employed.", "contact_id": sam["id"]},
            expect=201,
        )
    )["note"]
    on_jo = (
        await as_ann(
            "POST", f"/api/v1/contacts/{jo['id']}/notes", {"body": "Prefers email."}, expect=201
        )
    )["note"]
    deal_notes = (await as_ann("GET", f"/api/v1/deals/{did}/notes"))["notes"]
    assert [n["body"] for n in deal_notes] == [
        "Client is anxious about rates.",
        "Sam is self-employed.",
    ]
    assert {n["author_user_id"] for n in deal_notes} == {ann_id} and {
        n["kind"] for n in deal_notes
    } == {"user"}
    assert (await as_ann("GET", f"/api/v1/contacts/{sam['id']}/notes"))["notes"] == [about_sam]
    assert (await as_ann("GET", f"/api/v1/contacts/{jo['id']}/notes"))["notes"] == [on_jo]
    assert on_jo["deal_id"] is None and about_sam["deal_id"] == did

    guide = (
        await as_ann(
            "POST",
            f"/api/v1/deals/{did}/documents",
            {
                "name": "credit-guide.pdf",
                "label": "Credit guide",
                "size_bytes": 81234,
                "sha256": SHA,
            },
            expect=201,
        )
    )["document"]
    await as_ann(
        "POST",
        f"/api/v1/deals/{did}/documents",
        {"name": "payslip.pdf", "label": "Payslip", "size_bytes": 12345, "sha256": SHA},
        expect=201,
    )
    assert [
        d["name"] for d in (await as_ann("GET", f"/api/v1/deals/{did}/documents"))["documents"]
    ] == ["credit-guide.pdf", "payslip.pdf"]
    assert (await as_ann("GET", f"/api/v1/deals/{did}/documents?label=credit%20guide"))[
        "documents"
    ] == [guide]

    other = (
        await as_ann(
            "POST",
            "/api/v1/deals",
            {
                "title": "Refinance, Rivers",
                "workflow_id": wid,
                "stage_id": stage_id(wf, "New"),
                "folder": "2027",
            },
            expect=201,
        )
    )["deal"]

    # Lists with filters.
    async def ids(query: str) -> list[str]:
        return [d["id"] for d in (await as_ann("GET", f"/api/v1/deals{query}"))["deals"]]

    assert await ids("") == [did, other["id"]]
    assert await ids(f"?workflow_id={wid}") == [did, other["id"]]
    assert await ids(f"?stage_id={stage_id(wf, 'Application lodged')}") == [did]
    assert await ids(f"?workflow_id={wid}&stage_id={stage_id(wf, 'New')}") == [other["id"]]
    assert await ids(f"?owner_user_id={ann_id}") == [did]
    assert await ids(f"?contact_id={sam['id']}") == [did]
    assert await ids("?folder=2027") == [other["id"]]
    assert await ids("?label=first-home") == [did]
    assert await ids("?origin=local") == [did, other["id"]]
    assert await ids("?origin=referral") == []
    assert await ids("?q=rivers") == [
        did,
        other["id"],
    ]  # Sam Rivers on the first; the title of the second
    assert await ids("?q=refinance") == [other["id"]]
    assert await ids("?limit=1&offset=1") == [other["id"]]

    deal = (await as_ann("DELETE", f"/api/v1/deals/{did}/contacts/{sam['id']}"))["deal"]
    assert deal["contacts"] == [{"contact_id": jo["id"], "role": "primary"}]
    assert await ids(f"?contact_id={sam['id']}") == []

    # CSV export, then import into another node that has the same workflow and user.
    deals_csv = await call(a, "GET", "/api/v1/export/deals.csv")
    contacts_csv = await call(a, "GET", "/api/v1/export/contacts.csv")
    for answer, kind in ((deals_csv, "deals"), (contacts_csv, "contacts")):
        assert answer.status == 200
        assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert answer.headers["Content-Disposition"].startswith(f'attachment; filename="{kind}-')
    assert deals_csv.text.splitlines()[0].startswith(
        "id,title,deal_type,amount,currency,workflow,stage"
    )
    assert "Purchase at 12 Harbour St" in deals_csv.text and "Application lodged" in deals_csv.text

    await add_user(b, "ann@harbour.example", "Ann Broker")
    b_admin = (await b.api("GET", "/api/v1/users"))["users"][0]["id"]
    await b.api(
        "POST",
        "/api/v1/workflows",
        {
            "name": "Residential",
            "owner_user_id": b_admin,
            "stage_names": ["Settled", "Approved", "Application lodged", "New"],
        },
        expect=201,
    )
    got = await call(b, "POST", "/api/v1/import/contacts", Csv(contacts_csv.text))
    assert got.status == 201 and got.body["imported"] == 2
    got = await call(b, "POST", "/api/v1/import/deals", Csv(deals_csv.text))
    assert got.status == 201 and got.body["imported"] == 2

    assert (await call(b, "GET", "/api/v1/export/deals.csv")).text == deals_csv.text
    assert (await call(b, "GET", "/api/v1/export/contacts.csv")).text == contacts_csv.text
    local = {"workflow_id", "stage_id", "owner_user_id"}  # ids that are each node's own
    mine = (await a.api("GET", "/api/v1/deals"))["deals"]
    theirs = (await b.api("GET", "/api/v1/deals"))["deals"]
    assert [{k: v for k, v in d.items() if k not in local} for d in theirs] == [
        {k: v for k, v in d.items() if k not in local} for d in mine
    ]
    assert theirs[0]["owner_user_id"] != ann_id and theirs[0]["owner_user_id"] is not None
    assert (await b.api("GET", "/api/v1/contacts"))["contacts"] == (
        await a.api("GET", "/api/v1/contacts")
    )["contacts"]
