"""``refnode keys``, ``users`` and ``token``: the node's signing key, the people who use
the node, and their API tokens (``token create --user-id`` takes an email too, see
:mod:`node.cli.names`).
"""

from __future__ import annotations

import sys
from typing import Any

from node.cli import names
from node.cli.output import Command, Context, Group, choices, print_table
from node.http import users_api


def cmd_keys_rotate(ctx: Context) -> int:
    data = ctx.call("POST", "/api/v1/keys/rotate")
    ctx.emit(data, lambda: print(f"New signing key {data['signing_kid']}; "
                                 f"{data['peers_notified']} peer(s) are being told."))
    return 0


def cmd_users_add(ctx: Context) -> int:
    a = ctx.args
    data = ctx.call("POST", "/api/v1/users", {"email": a.email, "name": a.name, "role": a.role,
                                              "send_email": a.send_email})
    u = data["user"]

    def human() -> None:
        print(f"Added {u['name']} <{u['email']}> as {u['role']} (user {u['id']}).")
        sent = " (also sent to them by e-mail)" if a.send_email else ""
        print(f"They choose their password with this one-time link{sent}:")
        print(f"  {data['password_link']}")

    ctx.emit(data, human)
    return 0


def cmd_users_list(ctx: Context) -> int:
    data = ctx.call("GET", "/api/v1/users")
    ctx.emit(data, lambda: print_table(["ID", "EMAIL", "NAME", "ROLE", "ACTIVE"],
                                       [[u["id"], u["email"], u["name"], u["role"], "yes" if u["active"] else "no"]
                                        for u in data["users"]]))
    return 0


def cmd_token_create(ctx: Context) -> int:
    a = ctx.args
    data = ctx.call("POST", "/api/v1/tokens", {"label": a.label, "user_id": names.user_id(ctx, a.user_id, "--user-id")})

    def human() -> None:
        print(data["token"])
        print(f"({data['note']})", file=sys.stderr)

    ctx.emit(data, human)
    return 0


# --- the parser ------------------------------------------------------------------------


def add_commands(commands: Any, group: Group, command: Command) -> None:
    """Add ``keys``, ``users`` and ``token`` to the parser."""
    g = group("keys", "this node's keys")
    command(g, "rotate", cmd_keys_rotate, "rotate the signing key and tell every peer")

    g = group("users", "people who use this node")
    p = command(g, "add", cmd_users_add, "add a user")
    p.add_argument("email")
    p.add_argument("name")
    p.add_argument("--role", choices=choices(users_api.UserIn, "role"), default="broker")
    p.add_argument("--send-email", action="store_true", help="also e-mail them the set-password link")
    command(g, "list", cmd_users_list, "list users")

    g = group("token", "API tokens")
    p = command(g, "create", cmd_token_create, "create an API token (printed once)")
    p.add_argument("--label", default="")
    p.add_argument("--user-id", help="whose token, by email or id (default: yourself)")
