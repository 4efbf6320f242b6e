"""``refnode``: set up, run and administer a node from a terminal.

Every command except ``init``, ``serve`` and ``receipts verify`` is a client of the
node's admin API (see :mod:`node.cli.client`): it sends the request the API documents and
shows the answer, so the CLI can never do something the API would refuse. ``init`` creates
a node, ``serve`` runs it, and ``receipts verify`` reads the database directly so that the
evidence can be checked with the server stopped. The CRM and referring commands
(workflows, contacts, deals, deferred, opportunities, reports, export, import) live in
:mod:`node.cli.crm`; the output helpers both use are in :mod:`node.cli.output`.

Global options (before or after the command): ``--config PATH``, ``--data-dir DIR``,
``--json``. The admin token comes from ``REFNODE_TOKEN`` or ``<data_dir>/admin-token``.
Exit status: 0 on success, 1 when the node or the API says no, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from node.base.config import Config
from node.cli import crm as cli_crm
from node.cli.client import CliError, read_json_file
from node.cli.output import Context, choices, print_fields, print_table
from node.http import connections_api, federation_api, users_api
from node.storage.records import OutboxItem, Referral
from protocol.keys import fingerprint_of

FINAL_CONNECTION_STATES = ("active", "refused", "expired", "disconnected")


# --- setting up and running ------------------------------------------------------------


def cmd_init(ctx: Context) -> int:
    from node.base.keystore import KeyStoreError
    from node.cli.setup import TOKEN_FILE, init_node
    from node.http.app import passphrase_from_env

    a = ctx.args
    config = _init_config(ctx)
    if (config.keys_dir.exists() and any(config.keys_dir.iterdir())) or (config.data_dir / TOKEN_FILE).exists():
        raise CliError(f"{config.data_dir.absolute()} already holds a node; refusing to overwrite it",
                       code="already_initialised")
    admin_name = a.admin_name or a.admin_email.split("@")[0]
    try:
        result = init_node(config, admin_email=a.admin_email, admin_name=admin_name,
                           passphrase=passphrase_from_env(config, ctx.env))
    except (FileExistsError, KeyStoreError, OSError) as exc:
        raise CliError(str(exc), code="init_failed") from None
    data = {"node_id": result.node_id, "fingerprint": result.fingerprint, "org_name": config.org_name,
            "public_url": config.public_url, "data_dir": str(config.data_dir.absolute()),
            "config_path": str(config.config_path.absolute()), "token_path": str(result.token_path.absolute())}

    def human() -> None:
        print(f"Initialised a node for {config.org_name}.")
        print_fields([("node id", result.node_id), ("URL", config.public_url),
                      ("config", data["config_path"]), ("admin token", f"{data['token_path']} (mode 0600, keep it secret)")])
        print()
        print(f"  FINGERPRINT:  {result.fingerprint}")
        print()
        print("Read the fingerprint to the admins you connect with; they must see the same one.")
        print(f"Start the node with: refnode --data-dir {config.data_dir} serve")

    ctx.emit(data, human)
    return 0


def _init_config(ctx: Context) -> Config:
    """The configuration as loaded, with ``init``'s options on top. A ``--config`` file
    that does not exist yet is where ``init`` writes the configuration."""
    a = ctx.args
    path = ctx.config_path
    target = path if path is not None and not path.exists() else None
    if target is not None:
        ctx.args.config = None
    base = ctx.config()
    options = {"org_name": a.org_name, "host": a.host, "port": a.port, "public_url": a.public_url}
    given = {k: v for k, v in options.items() if v is not None}
    settings = base.model_dump()
    if a.public_url is None and ("host" in given or "port" in given):
        derived = Config(host=base.host, port=base.port).public_url
        if base.public_url == derived:  # not set explicitly: derive it again
            settings.pop("public_url")
    try:
        config = Config(**(settings | given))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else "options"
        raise CliError(f"{where}: {error['msg'].removeprefix('Value error, ')}", code="invalid") from None
    source = target.absolute() if target is not None else base._source
    config._source = source
    return config


def cmd_serve(ctx: Context) -> int:
    from node.base.keystore import KeyStore, KeyStoreError
    from node.base.logs import configure_logging
    from node.http.app import passphrase_from_env
    from node.http.serve import ServeError, serve

    config = ctx.config()
    if not config.keys_dir.is_dir():
        raise CliError(f"no node in {config.data_dir.absolute()}: run 'refnode init' first", code="not_initialised")
    passphrase = passphrase_from_env(config, ctx.env)
    try:
        keys = KeyStore.load(config.keys_dir, passphrase)
    except KeyStoreError as exc:
        raise CliError(str(exc), code="keys") from None
    configure_logging(config.log_format, config.log_level)
    banner = {"event": "serving", "org_name": config.org_name, "host": config.host, "port": config.port,
              "public_url": config.public_url, "node_id": keys.node_id, "fingerprint": keys.fingerprint,
              "inbox_workers": config.inbox_workers}

    def human() -> None:
        fronts = f", {config.inbox_workers} inbox front(s)" if config.inbox_workers else ""
        print(f"refnode: {config.org_name} listening on {config.host}:{config.port}{fronts}, "
              f"public URL {config.public_url}")
        print(f"refnode: fingerprint {keys.fingerprint}; Ctrl+C or SIGTERM stops it")

    def listening() -> None:
        ctx.emit(banner, human)
        sys.stdout.flush()

    try:
        serve(config, passphrase=passphrase, on_listening=listening)
    except ServeError as exc:
        raise CliError(str(exc), code=exc.code) from None
    ctx.emit({"event": "stopped"}, lambda: print("refnode: stopped"))
    return 0


def _fronts_line(fronts: dict[str, int] | None) -> list[tuple[str, str]]:
    if not fronts:
        return []
    return [("inbox fronts", f"{fronts['connected']} of {fronts['configured']} running")]


def cmd_info(ctx: Context) -> int:
    data = ctx.call("GET", "/api/v1/node")
    ctx.emit(data, lambda: print_fields([("name", data["name"]), ("node id", data["node_id"]),
                                         ("fingerprint", data["fingerprint"]), ("URL", data["base_url"]),
                                         ("suites", ", ".join(data["suites"])),
                                         *_fronts_line(data.get("inbox_fronts"))], indent=""))
    return 0


# --- invitations and connections -------------------------------------------------------


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
            deadline = time.monotonic() + a.timeout_s
            while connection["state"] not in FINAL_CONNECTION_STATES:
                if time.monotonic() > deadline:
                    raise CliError(f"connection {connection['id']} is still {connection['state']} after "
                                   f"{a.timeout_s:g} s; see 'refnode connections show {connection['id']}'",
                                   code="timeout")
                await asyncio.sleep(0.2)
                connection = (await client.request("GET", f"/api/v1/connections/{connection['id']}"))["connection"]
            why = None
            if connection["state"] != "active":
                failed = await client.request("GET", "/api/v1/outbox", query={"state": "failed"})
                why = next((i["last_error"] for i in failed["outbox"] if i["subject_id"] == connection["id"]), None)
            return started | {"connection": connection, "waited": True, "reason": why}

    data = asyncio.run(run())
    connection = data["connection"]
    ctx.emit(data, lambda: print(f"Connection {connection['id']} with {data['peer_name']} is {connection['state']}"
                                 + (f" ({data['reason']})" if data.get("reason") else "") + "."))
    if data["waited"] and connection["state"] != "active":
        return 1
    return 0


def cmd_request(ctx: Context) -> int:
    a = ctx.args
    data = ctx.call("POST", "/api/v1/connections",
                    {"url": a.url, "email": a.email, "direction": a.direction, "message": a.message})

    def human() -> None:
        c = data["connection"]
        print(f"Asked {data['peer_name']} to connect (connection {c['id']}, {c['state']}).")
        print(f"  Their fingerprint: {data['peer_fingerprint']}")
        print(f"  {a.email} must accept it there; follow it with: refnode connections show {c['id']}")

    ctx.emit(data, human)
    return 0


def _connection_line(data: dict[str, Any]) -> None:
    c = data["connection"]
    print(f"Connection {c['id']} with {c['name']} is {c['state']}.")


def cmd_connections_list(ctx: Context) -> int:
    data = ctx.call("GET", "/api/v1/connections")
    ctx.emit(data, lambda: print_table(
        ["ID", "NAME", "STATE", "DIRECTION", "ROLE", "PEER FINGERPRINT"],
        [[c["id"], c["name"], c["state"], c["direction"], c["role"], c["peer_fingerprint"]]
         for c in data["connections"]]))
    return 0


def cmd_connections_show(ctx: Context) -> int:
    data = ctx.call("GET", f"/api/v1/connections/{ctx.args.id}")
    c = data["connection"]
    keys = ["id", "name", "state", "direction", "role", "peer_fingerprint", "peer_node_id", "invitation_id",
            "target_email", "requested_by", "message", "created_at", "updated_at"]
    ctx.emit(data, lambda: print_fields([(k, c.get(k)) for k in keys], indent=""))
    return 0


def cmd_connections_accept(ctx: Context) -> int:
    data = ctx.call("POST", f"/api/v1/connections/{ctx.args.id}/accept")
    ctx.emit(data, lambda: _connection_line(data))
    return 0


def cmd_connections_decline(ctx: Context) -> int:
    data = ctx.call("POST", f"/api/v1/connections/{ctx.args.id}/decline", {"message": ctx.args.message})
    ctx.emit(data, lambda: _connection_line(data))
    return 0


def cmd_connections_disconnect(ctx: Context) -> int:
    data = ctx.call("POST", f"/api/v1/connections/{ctx.args.id}/disconnect", {"reason": ctx.args.reason})
    ctx.emit(data, lambda: _connection_line(data))
    return 0


# --- referrals -------------------------------------------------------------------------


def cmd_refer(ctx: Context) -> int:
    body = read_json_file(ctx.args.file)
    if not isinstance(body, dict):
        raise CliError(f"{ctx.args.file} must hold a JSON object (the body of POST /api/v1/referrals)")
    if ctx.args.connection_id:
        body["connection_id"] = ctx.args.connection_id
    data = ctx.call("POST", "/api/v1/referrals", body)

    def human() -> None:
        r = data["referral"]
        print(f"Referral {r['local_id']} ({r['referral_type']}: {r['offer']['deal']['title']}) is {r['state']}.")
        print_fields([("referral id", r["id"]), ("connection", r["connection_id"]), ("envelope", r["envelope_id"])])
        print(f"Follow it with: refnode referrals show {r['local_id']}")

    ctx.emit(data, human)
    return 0


def cmd_referrals_list(ctx: Context) -> int:
    data = ctx.call("GET", "/api/v1/referrals", side=ctx.args.side)
    ctx.emit(data, lambda: print_table(
        ["LOCAL ID", "SIDE", "STATE", "TYPE", "DEAL", "CONNECTION", "UPDATED"],
        [[r["local_id"], r["side"], r["state"], r["referral_type"], r["offer"]["deal"]["title"],
          r["connection_id"], r["updated_at"]] for r in data["referrals"]]))
    return 0


def cmd_referrals_show(ctx: Context) -> int:
    data = ctx.call("GET", f"/api/v1/referrals/{ctx.args.local_id}")

    def human() -> None:
        r, offer = data["referral"], data["referral"]["offer"]
        deal = offer["deal"]
        amount = f"{deal.get('amount')} {deal.get('currency') or ''}".strip() if deal.get("amount") else None
        clients = ", ".join(" ".join(filter(None, [c.get("first_name"), c.get("last_name")])) or c["ref"]
                            for c in offer["contacts"])
        print_fields([("referral", r["local_id"]), ("side", r["side"]), ("state", r["state"]),
                      ("type", r["referral_type"]), ("deal", deal["title"]), ("amount", amount),
                      ("clients", clients), ("referring agent", offer["referring_agent"]["name"]),
                      ("connection", r["connection_id"]), ("peer", fingerprint_of(r["peer_node_id"])),
                      ("created", r["created_at"]), ("updated", r["updated_at"])], indent="")
        print("timeline:")
        if not data["timeline"]:
            print("  (no status updates yet)")
        for e in data["timeline"]:
            extra = "; ".join(filter(None, [e.get("stage"), e.get("reason")]))
            print(f"  {e['seq']}. {e['at']}  {e['status']}" + (f"  ({extra})" if extra else ""))

    ctx.emit(data, human)
    return 0


def cmd_referrals_status(ctx: Context) -> int:
    a = ctx.args
    data = ctx.call("POST", f"/api/v1/referrals/{a.local_id}/status",
                    {"status": a.status, "stage": a.stage, "reason": a.reason})
    ctx.emit(data, lambda: print(f"Referral {a.local_id} is now {data['referral']['state']}; "
                                 "the update is on its way to the referrer."))
    return 0


# --- delivery, evidence, keys, users ---------------------------------------------------


def cmd_outbox_list(ctx: Context) -> int:
    data = ctx.call("GET", "/api/v1/outbox", state=ctx.args.state)
    ctx.emit(data, lambda: print_table(
        ["SEQ", "STATE", "TYPE", "PEER", "ATTEMPTS", "RECEIPT", "LAST ERROR"],
        [[i["seq"], i["state"], i["type"], fingerprint_of(i["peer_node_id"]), i["attempts"],
          "signed" if i["has_receipt"] else "-", i["last_error"]] for i in data["outbox"]]))
    return 0


def cmd_outbox_retry(ctx: Context) -> int:
    data = ctx.call("POST", f"/api/v1/outbox/{ctx.args.seq}/retry")
    ctx.emit(data, lambda: print(f"Outbox item {data['outbox']['seq']} is {data['outbox']['state']} again."))
    return 0


def cmd_receipts_verify(ctx: Context) -> int:
    """Offline: reads the database and the keys directly; the server may be stopped."""
    from node.base.keystore import KeyStore, KeyStoreError
    from node.federation import evidence
    from node.http.app import passphrase_from_env
    from node.storage import store
    from node.storage.db import Database

    config = ctx.config()
    if not config.database_path.is_file():
        raise CliError(f"no database at {config.database_path}; is this node initialised?", code="not_initialised")
    try:
        node_id = KeyStore.load(config.keys_dir, passphrase_from_env(config, ctx.env)).node_id
    except KeyStoreError as exc:
        raise CliError(str(exc), code="keys") from None
    db = Database(config.database_path)
    try:
        checks, types = db.run(lambda conn: (
            evidence.verify_receipts(conn, node_id),
            {i.seq: i.type for i in store.list_outbox(conn, state="delivered", limit=10**9)}))
    finally:
        db.close_sync()
    checks = sorted(checks, key=lambda c: c.seq)
    bad = [c for c in checks if not c.ok]
    data = {"checked": len(checks), "valid": len(checks) - len(bad), "invalid": [c.__dict__ for c in bad],
            "receipts": [c.__dict__ | {"type": types.get(c.seq)} for c in checks]}

    def human() -> None:
        print(f"Checked {len(checks)} stored receipt(s) offline against the peers' pinned keys:")
        print_table(["SEQ", "TYPE", "PEER", "DISPOSITION", "RESULT"],
                    [[c.seq, types.get(c.seq), fingerprint_of(c.peer_node_id), c.disposition,
                      "ok" if c.ok else f"FAIL: {c.problem}"] for c in checks])
        print(f"{len(bad)} of {len(checks)} receipt(s) FAILED." if bad else f"All {len(checks)} receipt(s) verify.")

    ctx.emit(data, human)
    return 1 if bad else 0


def cmd_keys_rotate(ctx: Context) -> int:
    data = ctx.call("POST", "/api/v1/keys/rotate")
    ctx.emit(data, lambda: print(f"New signing key {data['signing_kid']}; "
                                 f"{data['peers_notified']} peer(s) are being told."))
    return 0


def cmd_users_add(ctx: Context) -> int:
    a = ctx.args
    data = ctx.call("POST", "/api/v1/users", {"email": a.email, "name": a.name, "role": a.role})
    u = data["user"]
    ctx.emit(data, lambda: print(f"Added {u['name']} <{u['email']}> as {u['role']} (user {u['id']})."))
    return 0


def cmd_users_list(ctx: Context) -> int:
    data = ctx.call("GET", "/api/v1/users")
    ctx.emit(data, lambda: print_table(["ID", "EMAIL", "NAME", "ROLE", "ACTIVE"],
                                       [[u["id"], u["email"], u["name"], u["role"], "yes" if u["active"] else "no"]
                                        for u in data["users"]]))
    return 0


def cmd_token_create(ctx: Context) -> int:
    a = ctx.args
    data = ctx.call("POST", "/api/v1/tokens", {"label": a.label, "user_id": a.user_id})

    def human() -> None:
        print(data["token"])
        print(f"({data['note']})", file=sys.stderr)

    ctx.emit(data, human)
    return 0


# --- the parser ------------------------------------------------------------------------


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes. Subcommands repeat them with SUPPRESS defaults,
    so they work before or after the command without overriding each other."""
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument("--config", metavar="PATH", default=default,
                        help="configuration file (default: <data_dir>/refnode.toml)")
    parser.add_argument("--data-dir", metavar="DIR", default=default,
                        help="the node's data folder (same as REFNODE_DATA_DIR)")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="print machine-readable JSON")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    parser = argparse.ArgumentParser(prog="refnode", description="Run and administer a referral node.")
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    groups: dict[str, Any] = {}

    def group(name: str, help: str) -> Any:
        """A command with subcommands; asking again for a name gives the same group."""
        if name not in groups:
            sub = commands.add_parser(name, help=help, description=help, parents=[common])
            groups[name] = sub.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        return groups[name]

    def command(where: Any, name: str, fn: Callable[[Context], int], help: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = where.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(handler=fn)
        return sub

    directions = choices(connections_api.InvitationIn, "direction")

    p = command(commands, "init", cmd_init, "create a node: data folder, keys, database, first admin")
    p.add_argument("--org-name", required=True, help="your organisation's name, shown to peers")
    p.add_argument("--admin-email", required=True)
    p.add_argument("--admin-name", help="default: the part of the email before @")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8701)")
    p.add_argument("--public-url", help="URL peers use to reach this node (default http://HOST:PORT)")
    command(commands, "serve", cmd_serve, "run the node (HTTP server and delivery) until stopped")
    command(commands, "info", cmd_info, "show this node's id, fingerprint, name and URL")

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
    p.add_argument("--direction", choices=choices(connections_api.ConnectIn, "direction"), default="send",
                   help="seen from us (default: send, we refer to them)")
    p.add_argument("--message", default="", help="a note for them")

    g = group("connections", "connections with other nodes")
    command(g, "list", cmd_connections_list, "list connections and their states")
    command(g, "show", cmd_connections_show, "show one connection").add_argument("id")
    command(g, "accept", cmd_connections_accept, "accept a pending connection request").add_argument("id")
    p = command(g, "decline", cmd_connections_decline, "decline a pending connection request")
    p.add_argument("id")
    p.add_argument("--message", default="", help="told to the requester")
    p = command(g, "disconnect", cmd_connections_disconnect, "disconnect; the peer is told")
    p.add_argument("id")
    p.add_argument("--reason", default="")

    p = command(commands, "refer", cmd_refer, "refer a client: send a referral described in a JSON file")
    p.add_argument("--file", required=True, help="JSON body of POST /api/v1/referrals ('-' for stdin)")
    p.add_argument("--connection-id", help="set or override the file's connection_id")

    g = group("referrals", "referrals sent and received")
    p = command(g, "list", cmd_referrals_list, "list referrals")
    p.add_argument("--side", choices=choices(Referral, "side"))
    command(g, "show", cmd_referrals_show, "show a referral and its status timeline").add_argument("local_id")
    p = command(g, "status", cmd_referrals_status, "report progress on a received referral")
    p.add_argument("local_id")
    p.add_argument("status", choices=choices(federation_api.StatusIn, "status"))
    p.add_argument("--stage", help="free text, e.g. 'valuation ordered'")
    p.add_argument("--reason", help="why (for declined, lost, withdrawn)")

    g = group("outbox", "outgoing envelopes and their delivery")
    p = command(g, "list", cmd_outbox_list, "list outgoing envelopes")
    p.add_argument("--state", choices=choices(OutboxItem, "state"))
    command(g, "retry", cmd_outbox_retry, "retry a failed delivery").add_argument("seq", type=int)

    g = group("receipts", "signed delivery receipts")
    command(g, "verify", cmd_receipts_verify, "re-verify every stored receipt, offline (exit 1 if any fails)")

    g = group("keys", "this node's keys")
    command(g, "rotate", cmd_keys_rotate, "rotate the signing key and tell every peer")

    g = group("users", "people who use this node")
    p = command(g, "add", cmd_users_add, "add a user")
    p.add_argument("email")
    p.add_argument("name")
    p.add_argument("--role", choices=choices(users_api.UserIn, "role"), default="broker")
    command(g, "list", cmd_users_list, "list users")

    g = group("token", "API tokens")
    p = command(g, "create", cmd_token_create, "create an API token (printed once)")
    p.add_argument("--label", default="")
    p.add_argument("--user-id", help="default: yourself")

    cli_crm.register(commands, group, command)  # workflows, contacts, deals, referring, reports, CSV
    return parser


def command_names(parser: argparse.ArgumentParser | None = None) -> list[str]:
    """Every command as typed, e.g. ``["init", ..., "invite create", ...]``."""
    names: list[str] = []

    def walk(p: argparse.ArgumentParser, prefix: str) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    full = f"{prefix} {name}".strip()
                    if any(isinstance(x, argparse._SubParsersAction) for x in sub._actions):
                        walk(sub, full)
                    else:
                        names.append(full)

    walk(parser or build_parser(), "")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = dict(os.environ)
    if args.data_dir:
        env["REFNODE_DATA_DIR"] = args.data_dir
    ctx = Context(args, env)
    try:
        return int(args.handler(ctx))
    except CliError as exc:
        if ctx.as_json:
            print(json.dumps(exc.as_json(), indent=2))
        print(f"refnode: error: {exc.describe()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
