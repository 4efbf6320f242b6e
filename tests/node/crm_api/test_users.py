"""Users through the admin API, on the CRM store: add, list, rename, change role,
deactivate (their token stops working) and reactivate, and the rules that keep a node
workable (an active admin always; workflow owners stay active)."""

from __future__ import annotations

from .conftest import add_user, call, token_for


async def test_users_are_managed_and_deactivation_locks_the_token(node_factory):
    a = await node_factory("Alpha")
    admin = (await a.api("GET", "/api/v1/users"))["users"][0]
    assert (
        admin["role"] == "admin"
        and admin["active"] is True
        and admin["email"] == "admin@alpha.example"
    )
    ann_id = await add_user(a, "ann@alpha.example", "Ann Broker")
    ann = await token_for(a, ann_id)
    listed = (await a.api("GET", "/api/v1/users"))["users"]
    assert [(u["name"], u["role"], u["active"]) for u in listed] == [
        ("Alpha Admin", "admin", True),
        ("Ann Broker", "broker", True),
    ]
    assert set(listed[1]) == {"id", "email", "name", "role", "active", "created_at"}

    renamed = (await a.api("PATCH", f"/api/v1/users/{ann_id}", {"name": "Ann Example"}))["user"]
    assert (renamed["name"], renamed["role"], renamed["active"]) == ("Ann Example", "broker", True)
    assert (await a.api("GET", "/api/v1/workflows", token=ann))["workflows"] == []

    off = (await a.api("PATCH", f"/api/v1/users/{ann_id}", {"active": False}))["user"]
    assert off["active"] is False and off["name"] == "Ann Example"
    refused = await call(a, "GET", "/api/v1/workflows", token=ann)
    assert refused.status == 401 and refused.body["error"]["code"] == "unauthenticated"
    # Records that name her stay valid; she cannot be given new work while inactive.
    wf = {"name": "Home loans", "owner_user_id": ann_id, "stage_names": ["New"]}
    inactive = await a.api("POST", "/api/v1/workflows", wf, expect=400)
    assert "is not active" in inactive["error"]["message"]

    on = (await a.api("PATCH", f"/api/v1/users/{ann_id}", {"active": True}))["user"]
    assert on["active"] is True
    assert (await a.api("GET", "/api/v1/workflows", token=ann))["workflows"] == []


async def test_the_node_keeps_an_active_admin_and_workflow_owners(node_factory):
    a = await node_factory("Alpha")
    admin_id = (await a.api("GET", "/api/v1/users"))["users"][0]["id"]
    ann_id = await add_user(a, "ann@alpha.example", "Ann Broker")
    alone = await a.api("PATCH", f"/api/v1/users/{admin_id}", {"role": "broker"}, expect=409)
    assert "only active admin" in alone["error"]["message"] and alone["error"]["field"] == "role"

    promoted = (await a.api("PATCH", f"/api/v1/users/{ann_id}", {"role": "admin"}))["user"]
    assert promoted["role"] == "admin"
    ann = await token_for(a, ann_id)
    wf = await a.api(
        "POST",
        "/api/v1/workflows",
        {"name": "Home loans", "owner_user_id": admin_id, "stage_names": ["New"]},
        expect=201,
    )
    owner = await a.api("PATCH", f"/api/v1/users/{admin_id}", {"active": False}, expect=409)
    assert "owns workflow(s) 'Home loans'" in owner["error"]["message"]

    await a.api("PATCH", f"/api/v1/workflows/{wf['workflow']['id']}", {"owner_user_id": ann_id})
    demoted = (await a.api("PATCH", f"/api/v1/users/{admin_id}", {"role": "broker"}))["user"]
    assert demoted["role"] == "broker"
    # The first admin's token is now a broker's: admin routes refuse it.
    forbidden = await a.api("GET", "/api/v1/users", expect=403)
    assert forbidden["error"]["code"] == "forbidden"
    last = await a.api("PATCH", f"/api/v1/users/{ann_id}", {"active": False}, token=ann, expect=409)
    assert "only active admin" in last["error"]["message"]
