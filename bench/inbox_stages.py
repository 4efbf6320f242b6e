"""Where the time of Node.receive goes: each stage timed in-process, in µs per envelope.

Companion to bench/inbox_throughput.py (same synthetic peers and envelopes). No HTTP and
no second process: each stage runs over every envelope in a loop, so the figures are CPU
cost on one core. The reference in the same run is the reference server's crypto: one
Ed25519 verify plus one Ed25519 sign over the same bodies.

The transaction body (what Node.receive runs in Database.write: handler, CRM landing,
receipt, inbox row) is timed as a whole on a scratch copy of the database (rolled back,
so no fsync), then profiled with cProfile to list the functions inside it, each with its
share scaled to the unprofiled time.

    python bench/inbox_stages.py [--envelopes 1000] [--top 25] [--cprofile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from inbox_throughput import make_sender, seal_all, seed_peers
from nodeproc import make_node, median

from node.base.keystore import KeyStore
from node.base.logs import configure_logging, get_logger
from node.federation.referrals import on_offer
from node.federation.runtime import HANDLERS, Node
from node.mail.mime import message_bytes
from node.mail.render import render
from node.storage import store
from node.storage.db import Database
from node.storage.records import InboxItem
from node.storage.sqlite import connect
from protocol.encoding import loads_object
from protocol.envelope import (
    check_addressing,
    decrypt_inner,
    open_envelope,
    parse_envelope,
    verify_outer,
)
from protocol.messages import ReferralOffer
from protocol.models import validate
from protocol.receipts import make_receipt
from protocol.wire import Disposition, MessageType


def per_item_us(fn: Callable[[Any], Any], items: list[Any], repeats: int = 3) -> float:
    """Median over ``repeats`` passes of the mean µs per item."""
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        for item in items:
            fn(item)
        runs.append((time.perf_counter() - started) / len(items) * 1e6)
    return median(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description="Per-stage cost of Node.receive, in-process.")
    parser.add_argument("--envelopes", "-m", type=int, default=1000)
    parser.add_argument("--peers", "-k", type=int, default=16)
    parser.add_argument("--top", type=int, default=25, help="functions listed inside apply()")
    parser.add_argument(
        "--cprofile", type=Path, help="also write the cProfile of apply() to this file"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    try:
        return run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> int:
    now = datetime.now(UTC)
    config, _ = make_node(work, "stages")
    keys = KeyStore.load(config.keys_dir, None)
    senders = [make_sender(i, now) for i in range(args.peers)]
    seed_peers(config.database_path, senders, now)
    items = seal_all(args.envelopes, [s for s, _ in senders], keys.node_id, keys, now)
    bodies = [it.body for it in items]
    peers = {s.keys.node_id: s.keys for s, _ in senders}
    me, dkeys = keys.node_id, keys.decryption_keys
    rows: list[tuple[str, float]] = []

    def stage(name: str, fn: Callable[[Any], Any], over: list[Any]) -> None:
        rows.append((name, per_item_us(fn, over)))

    # Reference: what the reference server spends on crypto per request.
    client = ed25519.Ed25519PrivateKey.generate()
    signed = [(b, client.sign(b)) for b in bodies]
    pub = client.public_key()
    stage(
        "REF  1 Ed25519 verify + 1 sign (reference server's crypto)",
        lambda bs: (pub.verify(bs[1], bs[0]), client.sign(bs[0])),
        signed,
    )

    parsed = [parse_envelope(b) for b in bodies]
    stage("parse_envelope (JSON, base64, header model, sha256)", parse_envelope, bodies)
    stage("  verify_outer (Ed25519 verify)", lambda p: verify_outer(p, peers[p.sender]), parsed)
    stage(
        "  check_addressing (recipient, time window)",
        lambda p: check_addressing(p, me=me, now=now),
        parsed,
    )
    x25519 = next(k for k in dkeys.values() if k.crv == "X25519")
    stage(
        "  DecryptionKey.private_key() (rebuilt per envelope)",
        lambda p: x25519.private_key(),
        parsed,
    )
    stage(
        "  decrypt_inner (HPKE open + inner JWS parse + header model)",
        lambda p: decrypt_inner(p, dkeys),
        parsed,
    )
    inners = [decrypt_inner(p, dkeys) for p in parsed]
    pairs = list(zip(parsed, inners, strict=True))
    stage(
        "  inner signature verify (Ed25519)",
        lambda pi: pi[1].verify(peers[pi[0].sender].signing_key(pi[1].kid)),
        pairs,
    )
    payloads = [loads_object(i.payload, what="message") for i in inners]
    stage(
        "  loads_object(inner payload) (strict JSON)",
        lambda i: loads_object(i.payload, what="message"),
        inners,
    )
    stage(
        "  validate(ReferralOffer) (pydantic)",
        lambda d: validate(ReferralOffer, d, what="referral-offer"),
        payloads,
    )
    stage(
        "open_envelope total",
        lambda p: open_envelope(p, me=me, now=now, peer_keys=peers.get, decryption_keys=dkeys),
        parsed,
    )
    opened = [
        open_envelope(p, me=me, now=now, peer_keys=peers.get, decryption_keys=dkeys) for p in parsed
    ]
    stage(
        "make_receipt (model, canonical JSON, Ed25519 sign)",
        lambda p: make_receipt(
            envelope_id=p.envelope_id,
            envelope_sha256=p.sha256,
            recipient=me,
            sender=p.sender,
            disposition=Disposition.ACCEPTED,
            now=now,
            signing_key=keys.signing,
        ),
        parsed,
    )
    stage("  KeyStore.signing.kid (recomputed per receipt)", lambda p: keys.signing.kid, parsed)

    # The transaction body, as Node.receive's apply() runs it (duplicate check, the
    # handler with the CRM landing, receipt, inbox row), on a scratch copy of the
    # database, all in one transaction that is rolled back: no commit, no fsync.
    node_for_ctx = Node(config, keys, Database(work / "ctx.db"))
    ctx = node_for_ctx.context()
    ctx.peers.update(peers)  # type: ignore[attr-defined]
    handler = HANDLERS[MessageType.REFERRAL_OFFER]
    scratch = work / "scratch.db"
    shutil.copy(config.database_path, scratch)
    conn = connect(scratch)

    def apply(o: Any) -> None:
        conn.execute("SAVEPOINT w")
        store.get_inbox(conn, o.parsed.sender, o.parsed.envelope_id)
        handler(conn, ctx, o)
        receipt = make_receipt(
            envelope_id=o.parsed.envelope_id,
            envelope_sha256=o.parsed.sha256,
            recipient=me,
            sender=o.parsed.sender,
            disposition=Disposition.ACCEPTED,
            now=now,
            signing_key=keys.signing,
        )
        store.insert_inbox(
            conn,
            InboxItem(
                sender=o.parsed.sender,
                envelope_id=o.parsed.envelope_id,
                sha256=o.parsed.sha256,
                type=o.parsed.header.rn_type,
                body=o.parsed.raw,
                inner=o.inner_jws,
                receipt=receipt,
                received_at=ctx.ts,
            ),
        )
        conn.execute("RELEASE w")

    def in_transaction(fn: Callable[[Any], Any], profiler: cProfile.Profile | None = None) -> float:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if profiler is not None:
                profiler.enable()
            return per_item_us(fn, opened, 1)
        finally:
            if profiler is not None:
                profiler.disable()
            conn.execute("ROLLBACK")

    apply_us = in_transaction(apply)
    rows.append(
        ("apply() in the transaction: handler + CRM landing + receipt + inbox row", apply_us)
    )
    rows.append(
        (
            "  on_offer without the CRM landing (lander=None)",
            in_transaction(lambda o: on_offer(conn, ctx, o, None)),
        )
    )
    # The new-referral mail each filed offer causes: rendered in the transaction (inside
    # apply() above), turned into the message's bytes when the mail sender sends it.
    mail_context = {
        "to_name": "Owner of the deal",
        "from_org": "Sender 1",
        "referral_type": "mortgage",
        "deal_title": "Purchase at 2 Quay St",
        "agent": "Agent Name",
        "link": f"{config.public_url}/referrals/ref_01kdyak3487aj56vd0mvtn85v7",
    }
    rendered = render("new_referral", mail_context, config)
    stage(
        "  new-referral mail: render (Jinja2, text and HTML), inside apply()",
        lambda o: render("new_referral", mail_context, config),
        opened,
    )
    stage(
        "new-referral mail: its message's bytes when sent (node.mail.mime)",
        lambda o: message_bytes(
            mail_id="mail_01kdyak3487aj56vd0mvtn85v7",
            from_name=config.org_name,
            from_addr=config.from_address,
            to_name="Owner of the deal",
            to_addr="owner@node.example",
            subject=rendered.subject,
            date="Fri, 04 Dec 2026 10:00:00 +0000",
            text=rendered.text,
            html=rendered.html,
        ),
        opened,
    )
    profiler = cProfile.Profile()
    in_transaction(apply, profiler)
    conn.close()
    # Logging as the node does it: JSON lines at info, here to /dev/null.
    devnull = open(os.devnull, "w")  # noqa: SIM115
    configure_logging("json", "info", stream=devnull)
    log = get_logger("node.inbox")
    access = logging.getLogger("aiohttp.access")
    stage(
        "log: bind + 'envelope accepted' (structlog -> JSON)",
        lambda p: log.bind(
            peer=p.sender, envelope_id=p.envelope_id, type=p.message_type.value
        ).info("envelope accepted"),
        parsed,
    )
    stage(
        "log: one aiohttp access line (stdlib -> structlog formatter)",
        lambda p: access.info(
            '127.0.0.1 [23/Nov/2026:11:53:15 +0000] "POST /refnode/v1/inbox HTTP/1.1" 200 702 "-" "Python/3.11 aiohttp/3.14"'
        ),
        parsed,
    )

    print(
        f"inbox_stages: {args.envelopes} envelopes of ~{len(bodies[0])} B, µs per envelope on one core "
        f"(median of 3 passes)"
    )
    ref = rows[0][1]
    for name, us in rows:
        print(f"  {us:8.1f} µs  {us / ref:5.2f} x REF   {name}")

    # Inside apply(): each function's share of the profiled run, scaled to the time
    # apply() takes unprofiled (the profiler's overhead spreads roughly evenly).
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    total = max(ct for (_, _, name), (_, _, _, ct, _) in entries.items() if name == "apply")
    ours = sorted(
        (
            (ct, f"{Path(file).parent.name}/{Path(file).name}:{name}", calls)
            for (file, _, name), (calls, _, _, ct, _) in entries.items()
            if ("/node/" in file or "/protocol/" in file) and name not in ("apply", "<lambda>")
        ),
        reverse=True,
    )
    print(
        f"  inside apply() (cProfile shares scaled to {apply_us:.0f} µs; calls per envelope; inclusive):"
    )
    for ct, where, calls in ours[: args.top]:
        print(f"    {ct / total * apply_us:8.1f} µs  {calls / len(opened):4.1f}x  {where}")
    if args.cprofile:
        profiler.dump_stats(str(args.cprofile))
        print(f"  cProfile of apply() written to {args.cprofile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
