"""``refnode outbox`` and ``receipts verify``: the outgoing envelopes and their delivery,
and the signed receipts that prove it.

``outbox`` asks the admin API. ``receipts verify`` reads the database and the keys
directly, so that the evidence can be checked with the server stopped.
"""

from __future__ import annotations

from typing import Any

from node.cli.client import CliError
from node.cli.output import Command, Context, Group, choices, print_table
from node.cli.progress import progress
from node.storage.records import OutboxItem
from protocol.keys import fingerprint_of


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
    from node.base.key_files import KeyStoreError
    from node.base.keystore import KeyStore
    from node.federation import evidence
    from node.http.app import passphrase_from_env
    from node.storage import store
    from node.storage.db import Database
    from node.storage.sqlite import SchemaTooNew

    config = ctx.config()
    if not config.database_path.is_file():
        raise CliError(f"no database at {config.database_path}; is this node initialised?", code="not_initialised")
    try:
        node_id = KeyStore.load(config.keys_dir, passphrase_from_env(config, ctx.env)).node_id
    except KeyStoreError as exc:
        raise CliError(str(exc), code="keys") from None
    try:
        db = Database(config.database_path)
    except SchemaTooNew as exc:
        raise CliError(str(exc), code="schema_too_new") from None
    try:
        with progress("Verifying receipts", None, as_json=ctx.as_json) as bar:
            checks, types = db.run(lambda conn: (
                evidence.verify_receipts(conn, node_id, checked=bar.update),
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


# --- the parser ------------------------------------------------------------------------


def add_commands(commands: Any, group: Group, command: Command) -> None:
    """Add ``outbox`` and ``receipts`` to the parser."""
    g = group("outbox", "outgoing envelopes and their delivery")
    p = command(g, "list", cmd_outbox_list, "list outgoing envelopes")
    p.add_argument("--state", choices=choices(OutboxItem, "state"))
    command(g, "retry", cmd_outbox_retry, "retry a failed delivery").add_argument("seq", type=int)

    g = group("receipts", "signed delivery receipts")
    command(g, "verify", cmd_receipts_verify, "re-verify every stored receipt, offline (exit 1 if any fails)")
