"""The reference for bench/inbox_throughput.py: the least an inbox can do.

A minimal aiohttp app whose POST handler does exactly one Ed25519 verify (of the
signature the client made over the body, sent in ``X-Signature``), one SQLite insert
committed on its own (WAL, synchronous=FULL: on disk when it returns, as the node's writes are
when they return), and one Ed25519 sign
(over the body's SHA-256, the core of a receipt), and answers with that signature.
The SQL runs inline in the handler: the simplest server, no thread hop, no batching.

    python bench/ref_inbox_server.py --port P --db PATH
    (env BENCH_REF_SERVER_SEED = hex Ed25519 seed, BENCH_REF_CLIENT_KEY = hex public key)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519


def create_app(db_path: str, server_seed: bytes, client_key: bytes) -> web.Application:
    signer = ed25519.Ed25519PrivateKey.from_private_bytes(server_seed)
    client = ed25519.Ed25519PublicKey.from_public_bytes(client_key)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS inbox (id TEXT PRIMARY KEY, body BLOB NOT NULL,"
        " signature BLOB NOT NULL, received_at TEXT NOT NULL)"
    )

    async def inbox(request: web.Request) -> web.Response:
        body = await request.read()
        signature = base64.urlsafe_b64decode(request.headers.get("X-Signature", ""))
        try:
            client.verify(signature, body)
        except InvalidSignature:
            return web.json_response({"error": "bad_signature"}, status=401)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO inbox (id, body, signature, received_at) VALUES (?, ?, ?, ?)",
            (request.headers["X-Id"], body, signature, datetime.now(UTC).isoformat()),
        )
        conn.execute("COMMIT")
        return signed_answer(signer, body)

    app = bench_app(inbox)
    app.on_cleanup.append(lambda app: _close(conn))
    return app


def signed_answer(signer: ed25519.Ed25519PrivateKey, body: bytes) -> web.Response:
    """The core of a receipt: a signature over the body's SHA-256, base64url."""
    receipt = signer.sign(hashlib.sha256(body).digest())
    return web.Response(body=base64.urlsafe_b64encode(receipt), content_type="text/plain")


def bench_app(inbox: Callable[[web.Request], Awaitable[web.Response]]) -> web.Application:
    """POST /inbox with ``inbox``, and GET /ready for the benchmark to wait on."""

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=2 * 1024 * 1024)
    app.router.add_post("/inbox", inbox)
    app.router.add_get("/ready", ready)
    return app


async def _close(conn: sqlite3.Connection) -> None:
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    app = create_app(
        args.db,
        bytes.fromhex(os.environ["BENCH_REF_SERVER_SEED"]),
        bytes.fromhex(os.environ["BENCH_REF_CLIENT_KEY"]),
    )
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
