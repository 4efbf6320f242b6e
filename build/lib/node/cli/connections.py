"""``refnode invite``, ``connect``, ``request`` and ``connections``: making a connection
with another node and looking after it.

A connection starts from an invitation (``invite create`` gives a referral URL and key to
pass to the other admin, who runs ``connect``) or from a request to a user of the other
node (``request``, which they accept or decline). ``connections`` lists, shows, accepts,
declines and disconnects them, and shows or sets a connection's settings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from node.cli import names
from node.cli.client import ApiClient, CliError
from node.cli.files import read_json_file
from node.cli.output import Command, Context, Group, choices, flatten, print_fields, print_table
from node.http import connections_api

FINAL_CONNECTION_STATES = ("active", "refused", "expired", "disconnected")
#: The argument that names a connection.
CONNECTION: dict[str, Any] = {"metavar": "CONNECTION", "help": "the connection's name or id"}


# --- invitations -----------------------------------------------------------------------


def cmd_invite_create(ctx: Context) -> int:
    a = ctx.args
    body: dict[str, Any] = {"name": a.name, "direction": a.direction}
    if a.ttl_s is not None:
        body["ttl_s"] = a.ttl_s
    data = ctx.call("POST", "/api/v1/invitations", body)

    def human() -> None:
        invitation = data["invitation"]
        print(f"Invitation {invitation['id']} for {invitation['name']} (direction {invitation['direction']}, "
              f"expires {invitation['expires_at']})")
        print_fields([("Referral URL", data["referral_url"]), ("Referral key", data["referral_key"]),
                      ("Our fingerprint", data["fingerprint"])])
        print(f"Give the URL and key to {invitation['name']}'s admin (best by two different channels);")
        print(f"they run: refnode connect URL KEY, and should see our fingerprint {data['fingerprint']}.")

    ctx.emit(data, human)
    return 0


def cmd_invite_list(ctx: Context) -> int:
    data = ctx.call("GET", "/api/v1/invitations")
    ctx.emit(data, lambda: print_table(
        ["ID", "NAME", "STATE", "DIRECTION", "EXPIRES", "CONNECTION"],
        [[i["id"], i["name"], i["state"], i["direction"], i["expires_at"], i["connection_id"]]
         for i in data["invitations"]]))
    return 0


def cmd_invite_revoke(ctx: Context) -> int:
    data = ctx.call("POST", f"/api/v1/invitations/{ctx.args.id}/revoke")
    ctx.emit(data, lambda: print(f"Invitation {data['invitation']['id']} is {data['invitation']['state']}."))
    return 0


# --- connecting ------------------------------------------------------------------------


async def _follow(client: ApiClient, started: dict[str, Any], *, done: Callable[..., bool],
                  timeout_s: float) -> dict[str, Any]:
    """Poll a connection we asked for, and the delivery of its connection-request, until
    ``done(connection, request_item)``; the start answer with both. A timeout is an error."""
    connection = started["connection"]
    cid = connection["id"]
    deadline = time.monotonic() + timeout_s
    while True:
        connection = (await client.request("GET", f"/api/v1/connections/{cid}"))["connection"]
        items = (await client.request("GET", "/api/v1/outbox", query={"subject_id": cid}))["outbox"]
        request = next((i for i in reversed(items) if i["type"].startswith("connection-request/")), None)
        if done(connection, request):
            return started | {"connection": connection, "delivery": request, "waited": True}
        if time.monotonic() > deadline:
            last = f"; last delivery attempt: {request['last_error']}" if request and request["last_error"] else ""
            raise CliError(f"connection {cid} is still {connection['state']} after {timeout_s:g} s{last}. The node "
                           f"keeps trying until the delivery deadline; follow it with: refnode connections show {cid}",
                           code="timeout")
        await asyncio.sleep(0.2)


def _outcome(data: dict[str, Any]) -> str:
    c = data["connection"]
    note = f": {c['closing_note']}" if c["state"] != "active" and c.get("closing_note") else ""
    return f"Connection {c['id']} with {data['peer_name']} is {c['state']}{note}."


def cmd_connect(ctx: Context) -> int:
    a = ctx.args
    client = ctx.client()

    async def run() -> dict[str, Any]:
        async with client:
            started: dict[str, Any] = await client.request(
                "POST", "/api/v1/connections", {"referral_url": a.url, "referral_key": a.key})
            connection = started["connection"]
            if not ctx.as_json:
                print(f"Connecting to {started['peer_name']} (connection {connection['id']})")
                print(f"  Their fingerprint: {started['peer_fingerprint']}")
                print("  Check it with their admin: it must match what they read to you.")
            if a.no_wait:
                return started | {"waited": False}
            if not ctx.as_json:
                print(f"Waiting up to {a.timeout_s:g} s for the handshake...", flush=True)
            return await _follow(client, started, timeout_s=a.timeout_s,
                                 done=lambda c, _: c["state"] in FINAL_CONNECTION_STATES)

    data = asyncio.run(run())
    ctx.emit(data, lambda: print(_outcome(data)))
    return 1 if data["waited"] and data["connection"]["state"] != "active" else 0


def cmd_request(ctx: Context) -> int:
    """Ask, then wait for the other node's first answer: it takes the request (their user
    then accepts or declines it there) or refuses it (no such user, say)."""
    a = ctx.args
    client = ctx.client()

    async def run() -> dict[str, Any]:
        async with client:
            started: dict[str, Any] = await client.request(
                "POST", "/api/v1/connections",
                {"url": a.url, "email": a.email, "direction": a.direction, "message": a.message})
            if a.no_wait:
                return started | {"waited": False}
            return await _follow(client, started, timeout_s=a.timeout_s, done=lambda c, item: (
                c["state"] in FINAL_CONNECTION_STATES or (item is not None and item["state"] != "pending")))

    data = asyncio.run(run())
    c = data["connection"]
    refused = data["waited"] and c["state"] in ("refused", "expired", "disconnected")

    def human() -> None:
        if refused:
            print(f"{data['peer_name']} refused the request. {_outcome(data)}")
            return
        print(f"Asked {data['peer_name']} to connect (connection {c['id']}, {c['state']}).")
        print(f"  Their fingerprint: {data['peer_fingerprint']}")
        if c["state"] == "active":
            print("  They accepted it already.")
        elif data["waited"]:
            print(f"  Their node took the request: {a.email} must accept it there. Follow it with: "
                  f"refnode connections show {c['id']}")
        else:
            print(f"  Not sent yet; once it is, {a.email} must accept it there. Follow it with: "
                  f"refnode connections show {c['id']}")

    ctx.emit(data, human)
    return 1 if refused else 0


# --- connections -----------------------------------------------------------------------


def _id(ctx: Context) -> str:
    """The CONNECTION argument (a name or an id) as an id."""
    return str(names.connection_id(ctx, ctx.args.id, "CONNECTION"))


def _connection_line(data: dict[str, Any]) -> None:
    c = data["connection"]
    print(f"Connection {c['id']} with {c['name']} is {c['state']}.")


def _why(c: dict[str, Any]) -> str:
    """Why a connection ended (its closing note, cut short), for the list."""
    note = (c.get("closing_note") or "").splitlines()[0] if c.get("closing_note") else ""
    return note if len(note) <= 60 else note[:57] + "..."


def cmd_connections_list(ctx: Context) -> int:
    data = ctx.call("GET", "/api/v1/connections")
    ctx.emit(data, lambda: print_table(
        ["ID", "NAME", "STATE", "DIRECTION", "ROLE", "PEER FINGERPRINT", "WHY"],
        [[c["id"], c["name"], c["state"], c["direction"], c["role"], c["peer_fingerprint"], _why(c)]
         for c in data["connections"]]))
    return 0


def cmd_connections_show(ctx: Context) -> int:
    data = ctx.call("GET", f"/api/v1/connections/{_id(ctx)}")
    c = data["connection"]
    keys = ["id", "name", "state", "closing_note", "direction", "role", "peer_fingerprint", "peer_node_id",
            "invitation_id", "target_email", "requested_by", "message", "created_at", "updated_at"]
    ctx.emit(data, lambda: print_fields([(k, c.get(k)) for k in keys], indent=""))
    return 0


def cmd_connections_accept(ctx: Context) -> int:
    data = ctx.call("POST", f"/api/v1/connections/{_id(ctx)}/accept")
    ctx.emit(data, lambda: _connection_line(data))
    return 0


def cmd_connections_decline(ctx: Context) -> int:
    data = ctx.call("POST", f"/api/v1/connections/{_id(ctx)}/decline", {"message": ctx.args.message})
    ctx.emit(data, lambda: _connection_line(data))
    return 0


def cmd_connections_disconnect(ctx: Context) -> int:
    data = ctx.call("POST", f"/api/v1/connections/{_id(ctx)}/disconnect", {"reason": ctx.args.reason})
    ctx.emit(data, lambda: _connection_line(data))
    return 0


def cmd_connections_settings(ctx: Context) -> int:
    a = ctx.args
    a.id = _id(ctx)
    if a.file is None:
        data = ctx.call("GET", f"/api/v1/connections/{a.id}/settings")
    else:
        body = read_json_file(a.file)
        if not isinstance(body, dict):
            raise CliError(f"{a.file} must hold a JSON object (the body of PUT /api/v1/connections/{{id}}/settings)")
        data = ctx.call("PUT", f"/api/v1/connections/{a.id}/settings", body)
    ctx.emit(data, lambda: print_fields(flatten(data["settings"]), indent=""))
    return 0


# --- the parser ------------------------------------------------------------------------


def add_commands(commands: Any, group: Group, command: Command) -> None:
    """Add ``invite``, ``connect``, ``request`` and ``connections`` to the parser."""
    directions = choices(connections_api.InvitationIn, "direction")

    g = group("invite", "invitations: referral URL + key for another organisation")
    p = command(g, "create", cmd_invite_create, "create an invitation")
    p.add_argument("name", help="who it is for, e.g. 'Harbour Realty'")
    p.add_argument("--direction", choices=directions, default="receive",
                   help="seen from us; 'receive' (default): they will send us referrals")
    p.add_argument("--ttl-s", type=int, help="expiry in seconds (default: the node's invitation_ttl_s)")
    command(g, "list", cmd_invite_list, "list invitations")
    command(g, "revoke", cmd_invite_revoke, "revoke an open invitation").add_argument("id")

    p = command(commands, "connect", cmd_connect, "connect with the referral URL and key another admin gave you")
    p.add_argument("url", help="the referral URL")
    p.add_argument("key", help="the referral key (rnk1_...)")
    p.add_argument("--no-wait", action="store_true", help="do not wait for the handshake to finish")
    p.add_argument("--timeout-s", type=float, default=30.0, help="how long to wait (default 30)")

    p = command(commands, "request", cmd_request, "ask a user of another node to connect (they accept or decline)")
    p.add_argument("url", help="the other node's base URL")
    p.add_argument("email", help="email of an active user there")
    p.add_argument("--no-wait", action="store_true", help="do not wait for their node's answer")
    p.add_argument("--timeout-s", type=float, default=30.0, help="how long to wait for it (default 30)")
    p.add_argument("--direction", choices=choices(connections_api.ConnectIn, "direction"), default="send",
                   help="seen from us (default: send, we refer to them)")
    p.add_argument("--message", default="", help="a note for them")

    g = group("connections", "connections with other nodes")
    command(g, "list", cmd_connections_list, "list connections and their states")
    command(g, "show", cmd_connections_show, "show one connection").add_argument("id", **CONNECTION)
    command(g, "accept", cmd_connections_accept, "accept a pending connection request").add_argument("id", **CONNECTION)
    p = command(g, "decline", cmd_connections_decline, "decline a pending connection request")
    p.add_argument("id", **CONNECTION)
    p.add_argument("--message", default="", help="told to the requester")
    p = command(g, "disconnect", cmd_connections_disconnect, "disconnect; the peer is told")
    p.add_argument("id", **CONNECTION)
    p.add_argument("--reason", default="")
    p = command(g, "settings", cmd_connections_settings,
                "show a connection's settings, or set them from a JSON file (admins)")
    p.add_argument("id", **CONNECTION)
    p.add_argument("--file", help="JSON body of PUT /api/v1/connections/{id}/settings ('-' for stdin)")
