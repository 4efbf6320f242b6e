"""A floor for bench/inbox_throughput.py (``--floor``): the least a *node's* inbox can do.

A bare aiohttp app that does, per envelope, only what the protocol and the product require
of an inbox, with ``cryptography`` and ``sqlite3`` called directly and no code of ours in
the request path: parse the outer JWS (``json.loads``), verify its Ed25519 signature, open
the HPKE payload, verify the inner JWS's signature, parse the message, write the referral
the way the node files it (the inbox row with the envelope and the inner JWS, the referral
with its offer, two contacts, a deal, its two contact links and a note: 8 rows in the
node's own schema, with its indexes and foreign keys) and commit it durably (WAL,
``synchronous=FULL``), then sign a receipt (over the body's SHA-256, like the reference).
Commits are grouped: writes that arrive while a COMMIT is flushing share the next one, and
the COMMIT runs on a thread so the loop goes on. Unlike the node (``node/storage/db.py``)
it does not overlap the next batch with the last one's sync, and its statement journals
use SQLite's default temp store. No checks beyond the signatures, no models, no logging.

If this floor is well below the reference, no node doing that work in Python on that
machine reaches the reference either, however lean its own code.

    python bench/floor_inbox_server.py --port P --data-dir DIR
    (DIR: an initialised node's data folder, with its peers; it is written to)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ed25519

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Set-up only (keys, peers, a workflow): none of this runs per request.
from ref_inbox_server import bench_app, signed_answer  # noqa: E402

from node.base.keystore import KeyStore  # noqa: E402
from node.crm import store as crm  # noqa: E402
from node.crm.models import WorkflowIn  # noqa: E402
from node.storage import store  # noqa: E402
from node.storage.db import Database  # noqa: E402
from protocol.discovery import verify_discovery  # noqa: E402
from protocol.envelope import hpke_info  # noqa: E402
from protocol.suites import SUITES, SuiteId  # noqa: E402


def b64d(text: str | bytes) -> bytes:
    if isinstance(text, str):
        text = text.encode("ascii")
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def create_app(data_dir: Path) -> web.Application:
    keys = KeyStore.load(data_dir / "keys", None)
    me = keys.node_id
    x25519 = next(k for k in keys.decryption_keys.values() if k.crv == "X25519")
    hpke = SUITES[SuiteId.X25519_CHACHA].suite
    private = x25519.private_key()
    signer = keys.signing.key
    db = Database(data_dir / "node.db")
    peers: dict[str, dict[str, ed25519.Ed25519PublicKey]] = {}
    for peer in db.run(store.list_peers):
        _, pk = verify_discovery(peer.discovery, expected_node_id=peer.node_id)
        peers[peer.node_id] = {kid: k.key for kid, k in pk.signing.items()}

    def placement(conn: sqlite3.Connection) -> tuple[str, str, str]:
        found = crm.placement(conn, name="Floor")
        if found is not None:
            return found
        admin = crm.list_users(conn, active_only=True)[0]
        workflow = crm.create_workflow(conn, WorkflowIn(name="Floor", owner_user_id=admin.id,
                                                        stage_names=["New"]), now=datetime.now(UTC))
        return workflow.id, workflow.stages[0].id, workflow.owner_user_id

    workflow_id, stage_id, owner = db.run(placement)
    db.close_sync()
    conn = sqlite3.connect(data_dir / "node.db", isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    counter = iter(range(10**9))
    pending: list[tuple[Any, asyncio.Future[None]]] = []
    wake = asyncio.Event()
    executor = ThreadPoolExecutor(max_workers=1)

    async def commit(write: Any) -> None:
        """Group commit: writes that arrive while a COMMIT runs share the next one."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending.append((write, future))
        wake.set()
        await future

    async def committer() -> None:
        loop = asyncio.get_running_loop()
        while True:
            await wake.wait()
            wake.clear()
            batch = pending[:]
            pending.clear()
            if not batch:
                continue
            conn.execute("BEGIN IMMEDIATE")
            for write, _ in batch:
                write()
            await loop.run_in_executor(executor, conn.execute, "COMMIT")  # the flush releases the GIL
            for _, future in batch:
                future.set_result(None)

    async def start_committer(app: web.Application) -> None:
        app["committer"] = asyncio.get_running_loop().create_task(committer())

    async def inbox(request: web.Request) -> web.Response:
        body = await request.read()
        outer = json.loads(body)
        header = json.loads(b64d(outer["protected"]))
        sender = header["rn_from"]
        peers[sender][header["kid"]].verify(b64d(outer["signature"]),
                                            f"{outer['protected']}.{outer['payload']}".encode("ascii"))
        info = hpke_info(sender, me, header["rn_id"])
        inner = hpke.decrypt(b64d(outer["payload"]), private, info=info)
        h, p, s = inner.split(b".")
        inner_header = json.loads(b64d(h))
        peers[sender][inner_header["kid"]].verify(b64d(s), h + b"." + p)
        offer = json.loads(b64d(p))
        n = next(counter)
        ts = header["rn_iat"]
        deal_id, note_id, ref_id = f"deal_floor{n}", f"note_floor{n}", f"ref_floor{n}"

        def write() -> None:
            conn.execute("INSERT INTO inbox VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (sender, header["rn_id"], hashlib.sha256(body).hexdigest(), header["rn_type"], body, inner,
                          b"receipt", ts))
            contact_ids = []
            for i, c in enumerate(offer["contacts"]):
                contact_ids.append(f"ct_floor{n}_{i}")
                conn.execute("INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (contact_ids[-1], c.get("first_name"), c.get("last_name"), c.get("email"), c.get("phone"),
                              "{}", c.get("date_of_birth"), "{}", ts, ts))
            deal = offer["deal"]
            conn.execute("INSERT INTO deals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (deal_id, deal["title"], offer["referral_type"], deal.get("amount"), deal.get("currency"),
                          workflow_id, stage_id, owner, "", "floor", "", "[]", "{}", "referral", sender,
                          offer["referral_id"], ts, ts))
            conn.executemany("INSERT INTO deal_contacts VALUES (?, ?, ?, ?)",
                             [(deal_id, cid, c.get("role") or "primary", i)
                              for i, (cid, c) in enumerate(zip(contact_ids, offer["contacts"], strict=True))])
            conn.execute("INSERT INTO notes VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (note_id, deal_id, None, None, "referral", offer.get("message") or "-", ts))
            conn.execute("INSERT INTO referrals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (ref_id, "receiver", sender, offer["referral_id"], offer["connection_id"], "received",
                          offer["referral_type"], deal_id, header["rn_id"], b64d(p), 0, ts, ts))

        await commit(write)
        return signed_answer(signer, body)

    app = bench_app(inbox)
    app.on_startup.append(start_committer)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    web.run_app(create_app(args.data_dir), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
