"""Inbox throughput: envelopes per second a real node accepts, against a bare reference.

The node under test is its own OS process (``refnode init`` data folder, SQLite file, keys)
on 127.0.0.1, run as one process and with inbox fronts (``--workers``). Before it starts,
K synthetic peers are written into its database with an ACTIVE connection each (role
responder, direction receive: they may send us referrals), so no handshake runs over the
network. M referral-offer envelopes (X25519 suite, unique envelope and referral ids, ~1.9 KB
of offer content) are sealed in advance from those peers. One aiohttp client in this
process POSTs them with concurrency C after a warm-up; every answer must be 200 with a
receipt, a sample of receipts is verified, and every envelope must have become a deal.

The reference is another process, bench/ref_inbox_server.py: per request one Ed25519
verify, one SQLite insert committed on its own (WAL, synchronous=FULL), one Ed25519 sign.
It gets the very same bodies. ``--floor`` adds bench/floor_inbox_server.py: the node's
required crypto and rows with no code of ours. Runs alternate (reference, floor, node
configurations, then again), each on a fresh copy of the database, and the medians are
compared in this run, on this machine.

    python bench/inbox_throughput.py [--envelopes 2000] [--concurrency 64] [--peers 16]
                                     [--workers 0,1] [--floor]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ed25519
from nodeproc import (
    ROOT,
    Proc,
    cpu_seconds,
    free_port,
    make_node,
    median,
    node_proc,
    percentile,
    serve_command,
)

from node.base.ids import new_id
from node.base.keystore import KeyStore
from node.storage import store
from node.storage.db import Database
from node.storage.records import Connection
from protocol.discovery import PeerKeys, build_discovery, sign_discovery, verify_discovery
from protocol.envelope import digest, seal_envelope
from protocol.keys import DecryptionKey, SigningKey
from protocol.messages import Address, Consent, ContactProfile, DealSummary, Person, ReferralOffer
from protocol.models import format_ts
from protocol.offers import SHAREABLE_FIELDS
from protocol.receipts import verify_receipt
from protocol.suites import SuiteId
from protocol.wire import INBOX_PATH, MEDIA_TYPE_JOSE_JSON, MessageType

TARGET_RATIO = 0.6


@dataclass(frozen=True)
class Sender:
    """A synthetic peer: its keys, its signed discovery document, its connection id."""

    signing: SigningKey
    keys: PeerKeys
    discovery: bytes
    connection_id: str


@dataclass(frozen=True)
class Item:
    """One request: the body, and what its answer is checked against."""

    body: bytes
    envelope_id: str
    sender: str
    headers: dict[str, str]


@dataclass
class Run:
    kind: str
    elapsed_s: float
    count: int
    failures: list[str]
    latencies_s: list[float]
    checked: int
    cpu_s: float  # CPU time of the server process (all threads) during the timed part

    @property
    def rate(self) -> float:
        return self.count / self.elapsed_s

    @property
    def cpu_us(self) -> float:
        """Server CPU per request: less sensitive than wall time to other load on the machine."""
        return self.cpu_s / self.count * 1e6


def make_sender(i: int, now: datetime, seed: bytes | None = None) -> tuple[Sender, dict[str, object]]:
    """Synthetic peer ``i``; with ``seed``, its keys and connection id are the same each
    time (a cached data folder's peers can be sealed for again)."""

    def secret(what: str) -> bytes:
        return hashlib.sha256(seed + f"{i}/{what}".encode()).digest() if seed else os.urandom(32)

    identity = SigningKey.from_seed(secret("identity"))
    signing = SigningKey.from_seed(secret("signing"))
    encryption = DecryptionKey.x25519(secret("encryption"))
    # An inbox nobody listens on: if the node ever tried to send there, it would back off.
    inbox = f"http://127.0.0.1:{free_port()}{INBOX_PATH}"
    doc = build_discovery(
        name=f"Bench Agency {i:02d}",
        inbox_url=inbox,
        identity=identity.public,
        signing=[(signing.public, "active")],
        encryption=[(SuiteId.X25519_CHACHA, encryption, "active")],
        now=now,
    )
    raw = sign_discovery(doc, identity)
    _, keys = verify_discovery(raw, expected_node_id=identity.kid)
    sender = Sender(signing, keys, raw, f"con_bench{secret('connection').hex()[:16]}" if seed else new_id("con"))
    return sender, {
        "name": keys.name,
        "base_url": inbox.split("/refnode/", 1)[0],
        "inbox_url": inbox,
    }


def seed_peers(
    db_path: Path, senders: list[tuple[Sender, dict[str, object]]], now: datetime
) -> None:
    """Write each sender as a peer with an ACTIVE receive connection, as a finished
    handshake would have left it."""
    ts = format_ts(now)

    def write(conn: sqlite3.Connection) -> None:
        for sender, info in senders:
            keys = sender.keys
            store.upsert_peer(
                conn,
                node_id=keys.node_id,
                name=str(info["name"]),
                base_url=str(info["base_url"]),
                inbox_url=str(info["inbox_url"]),
                discovery=sender.discovery,
                signing_jwks={kid: k.jwk() for kid, k in keys.all_signing.items()},
                now=ts,
            )
            store.insert_connection(
                conn,
                Connection(
                    id=sender.connection_id,
                    peer_node_id=keys.node_id,
                    role="responder",
                    state="active",
                    direction="receive",
                    name=keys.name,
                    invitation_id=None,
                    target_email=None,
                    requested_by=f"admin@{keys.node_id[:8].lower()}.invalid",
                    message="",
                    settings={},
                    created_at=ts,
                    updated_at=ts,
                ),
            )

    db = Database(db_path)
    try:
        db.run(write)
    finally:
        db.close_sync()


CONSENT_BY = Person(name="Ava Agent", email="ava.agent@harbour-realty.example")


def offer(i: int, connection_id: str, now: datetime) -> ReferralOffer:
    """A realistic offer: two applicants with contact details, a deal, consent, a note."""
    refs = [f"cli_{i:06d}a", f"cli_{i:06d}b"]
    home = Address(line1=f"{i % 90 + 1}/12 Wattle Crescent", locality="Glebe", region="NSW",
                   postcode="2037", country="AU")
    return ReferralOffer(
        referral_id=f"rfl_bench_{i:06d}",
        connection_id=connection_id,
        referral_type="mortgage",
        deal=DealSummary(
            title=f"Purchase at {i % 400 + 1} Harbour Street, Pyrmont",
            deal_type="purchase",
            amount=f"{600000 + (i % 97) * 1000}.00",
            currency="AUD",
            summary="Two-bedroom apartment, contract exchanged, settlement in 42 days. Buyers hold a "
            "pre-approval elsewhere that expires before settlement and want a better rate; "
            "20% deposit from savings, both in permanent full-time employment.",
        ),
        contacts=[
            ContactProfile(
                ref=refs[0],
                role="primary",
                first_name="Jordan",
                last_name=f"Citizen{i}",
                email=f"jordan.citizen{i}@example.com",
                phone="+61 400 123 456",
                address=home,
                date_of_birth="1988-04-12",
            ),
            ContactProfile(
                ref=refs[1],
                role="co-applicant",
                first_name="Sam",
                last_name=f"Nguyen{i}",
                email=f"sam.nguyen{i}@example.com",
                phone="+61 411 987 654",
                address=home,
                date_of_birth="1990-09-30",
            ),
        ],
        shared_fields=list(SHAREABLE_FIELDS),
        owner=Person(name="Ava Agent", email="ava.agent@harbour-realty.example"),
        referring_agent=Person(name="Ava Agent", email="ava.agent@harbour-realty.example"),
        message="Hi, referring Jordan and Sam who are buying in Pyrmont. They prefer calls after 5pm "
        "and would like to compare fixed and variable options. Happy to join a first call.",
        consent=Consent(
            contact_refs=refs,
            consented_at=format_ts(now),
            method="verbal",
            disclosure_version="privacy-2026-07",
            disclosure_sha256="n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg",
            recorded_by=CONSENT_BY,
        ),
        sent_at=format_ts(now),
    )


def seal_all(
    count: int, senders: list[Sender], node_id: str, keys: KeyStore, now: datetime
) -> list[Item]:
    recipient_key = next(k.public for k in keys.decryption_keys.values() if k.crv == "X25519")
    items = []
    for i in range(count):
        sender = senders[i % len(senders)]
        envelope_id = f"env_bench_{i:06d}"
        body = seal_envelope(
            offer(i, sender.connection_id, now),
            message_type=MessageType.REFERRAL_OFFER,
            envelope_id=envelope_id,
            sender=sender.keys.node_id,
            recipient=node_id,
            now=now,
            signing_key=sender.signing,
            suite=SuiteId.X25519_CHACHA,
            recipient_key=recipient_key,
        )
        items.append(
            Item(body, envelope_id, sender.keys.node_id, {"Content-Type": MEDIA_TYPE_JOSE_JSON})
        )
    return items


async def fire(
    url: str, items: list[Item], warmup: int, concurrency: int, server_pid: int
) -> tuple[float, float, list[tuple[int, bytes, float]]]:
    """POST ``items`` with ``concurrency`` requests in flight; the first ``warmup`` are not
    timed. Returns wall seconds and server CPU seconds of the timed part, and the answers."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def run(batch: list[Item]) -> list[tuple[int, bytes, float]]:
            results: list[tuple[int, bytes, float]] = [(0, b"", 0.0)] * len(batch)
            position = 0

            async def worker() -> None:
                nonlocal position
                while position < len(batch):
                    i = position
                    position += 1
                    started = time.perf_counter()
                    try:
                        async with session.post(
                            url, data=batch[i].body, headers=batch[i].headers
                        ) as response:
                            results[i] = (
                                response.status,
                                await response.read(),
                                time.perf_counter() - started,
                            )
                    except (aiohttp.ClientError, OSError) as exc:
                        results[i] = (-1, repr(exc).encode(), time.perf_counter() - started)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return results

        warm = await run(items[:warmup])
        bad = [r for r in warm if r[0] != 200]
        if bad:
            raise RuntimeError(
                f"{len(bad)} warm-up requests failed, first: {bad[0][0]} {bad[0][1][:300]!r}"
            )
        cpu = cpu_seconds(server_pid)
        started = time.perf_counter()
        results = await run(items[warmup:])
        elapsed = time.perf_counter() - started
        return elapsed, cpu_seconds(server_pid) - cpu, results


def check_node_answers(
    items: list[Item], results: list[tuple[int, bytes, float]], node_keys: PeerKeys, sample: int
) -> tuple[list[str], int]:
    failures = []
    for item, (status, payload, _) in zip(items, results, strict=True):
        if status != 200:
            failures.append(f"{item.envelope_id}: HTTP {status} {payload[:200]!r}")
        elif b'"signature"' not in payload:
            failures.append(f"{item.envelope_id}: 200 without a receipt")
    picked = random.Random(1).sample(range(len(items)), min(sample, len(items)))
    checked = 0
    for i in picked:
        if results[i][0] != 200:
            continue
        receipt = verify_receipt(
            results[i][1],
            keys=node_keys,
            envelope_id=items[i].envelope_id,
            envelope_sha256=digest(items[i].body),
            sender=items[i].sender,
        )
        if receipt.disposition.value != "accepted":
            failures.append(f"{items[i].envelope_id}: receipt says {receipt.disposition.value}")
        checked += 1
    return failures, checked


def check_ref_answers(
    items: list[Item],
    results: list[tuple[int, bytes, float]],
    server_key: ed25519.Ed25519PublicKey,
    sample: int,
) -> tuple[list[str], int]:
    failures = [
        f"{item.envelope_id}: HTTP {status} {payload[:200]!r}"
        for item, (status, payload, _) in zip(items, results, strict=True)
        if status != 200
    ]
    picked = random.Random(1).sample(range(len(items)), min(sample, len(items)))
    checked = 0
    for i in picked:
        if results[i][0] == 200:
            server_key.verify(
                base64.urlsafe_b64decode(results[i][1]), hashlib.sha256(items[i].body).digest()
            )
            checked += 1
    return failures, checked


def describe(run: Run, label: str) -> str:
    lat = [x * 1000 for x in run.latencies_s]
    return (
        f"  {label:<10} {run.count} in {run.elapsed_s:.3f} s = {run.rate:7.1f} /s   server CPU "
        f"{run.cpu_us:6.0f} µs/req   latency p50 {percentile(lat, 50):5.1f} ms p99 {percentile(lat, 99):6.1f} ms"
        f"   failures {len(run.failures)}   receipts verified {run.checked}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Inbox throughput of a real node against a bare reference."
    )
    parser.add_argument(
        "--envelopes", "-m", type=int, default=2000, help="timed requests per run (M)"
    )
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests before each run")
    parser.add_argument("--concurrency", "-c", type=int, default=64, help="requests in flight (C)")
    parser.add_argument(
        "--peers", "-k", type=int, default=16, help="synthetic connected senders (K)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="reference+node pairs, alternating")
    parser.add_argument("--verify-sample", type=int, default=200, help="receipts verified per run")
    parser.add_argument(
        "--node-log-level", default="info", help="REFNODE_LOG_LEVEL of the node (default: info)"
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="record the node's processes with py-spy (pip install py-spy) into DIR/node-<round>-w<workers>.txt",
    )
    parser.add_argument(
        "--workdir", type=Path, help="where data folders go (default: a new temp dir)"
    )
    parser.add_argument(
        "--workers",
        default="0,1",
        help="comma-separated inbox_workers settings to run the node with, each every round "
        "(default 0,1: one process, then one inbox front beside it)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run bench/floor_inbox_server.py each round: only the crypto and rows an inbox "
        "needs, called directly, no code of ours per request",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    args.workers = [int(w) for w in args.workers.split(",")]

    work = Path(tempfile.mkdtemp(prefix="bench-inbox-", dir=args.workdir))
    try:
        return run_bench(args, work)
    finally:
        if args.keep:
            print(f"  (kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run_bench(args: argparse.Namespace, work: Path) -> int:
    now = datetime.now(UTC)
    total = args.warmup + args.envelopes
    t0 = time.perf_counter()
    config, _ = make_node(work, "pristine")
    keys = KeyStore.load(config.keys_dir, None)
    senders = [make_sender(i, now) for i in range(args.peers)]
    seed_peers(config.database_path, senders, now)
    items = seal_all(total, [s for s, _ in senders], keys.node_id, keys, now)
    client_key = ed25519.Ed25519PrivateKey.generate()
    server_seed = os.urandom(32)
    server_key = ed25519.Ed25519PrivateKey.from_private_bytes(server_seed).public_key()
    ref_items = [
        Item(
            it.body,
            it.envelope_id,
            it.sender,
            {
                "Content-Type": "application/octet-stream",
                "X-Id": it.envelope_id,
                "X-Signature": base64.urlsafe_b64encode(client_key.sign(it.body)).decode(),
            },
        )
        for it in items
    ]
    sizes = sorted(len(it.body) for it in items)
    content = len(json.dumps(offer(0, "con_x", now).wire(), separators=(",", ":")))
    _, how = serve_command(config.config_path)
    print(
        f"inbox_throughput: M={args.envelopes} timed (+{args.warmup} warm-up) per run, C={args.concurrency}, "
        f"K={args.peers} peers, {args.rounds} rounds, {os.cpu_count()} cores, node log level {args.node_log_level}"
    )
    print(f"  node runs as: {how}")
    print(
        f"  envelope bytes min/median/max {sizes[0]}/{sizes[len(sizes) // 2]}/{sizes[-1]} "
        f"(offer JSON {content} B); prepared in {time.perf_counter() - t0:.1f} s"
    )

    flush = commit_latency_us(work / "flush.db")
    print(f"  one committed 4.8 KB insert on this disk (WAL, synchronous=FULL): p50 {flush[0]:.0f} µs wall, "
          f"{flush[1]:.0f} µs CPU: what the reference waits for per request")
    node_runs: dict[int, list[Run]] = {w: [] for w in args.workers}
    ref_runs: list[Run] = []
    floor_runs: list[Run] = []
    for r in range(args.rounds):
        ref_runs.append(
            reference_run(work, r, ref_items, args, client_key, server_seed, server_key)
        )
        print(describe(ref_runs[-1], "reference"), flush=True)
        if args.floor:
            floor_runs.append(floor_run(work, r, config.data_dir, items, args, keys.signing.key.public_key()))
            print(describe(floor_runs[-1], "floor"), flush=True)
        for w in args.workers:
            node_runs[w].append(node_run(work, r, w, config.data_dir, keys.node_id, items, args))
            print(describe(node_runs[w][-1], label(w)), flush=True)

    failures = [f for runs in [*node_runs.values(), ref_runs, floor_runs] for run in runs for f in run.failures]
    for f in failures[:10]:
        print(f"  FAILURE {f}")
    ref_rate = median([run.rate for run in ref_runs])
    ref_cpu = median([run.cpu_us for run in ref_runs])
    print(
        f"inbox_throughput: reference {ref_rate:.1f} requests/s (median of {[round(r.rate, 1) for r in ref_runs]}),"
        f" server CPU {ref_cpu:.0f} µs/request"
    )
    if floor_runs:
        floor_rate = median([run.rate for run in floor_runs])
        floor_cpu = median([run.cpu_us for run in floor_runs])
        print(
            f"RESULT inbox_throughput [floor]: floor/reference = {floor_rate / ref_rate:.2f}; floor {floor_rate:.0f}/s,"
            f" reference {ref_rate:.0f}/s; CPU per request {floor_cpu:.0f} vs {ref_cpu:.0f} µs"
        )
    for w, runs in node_runs.items():
        node_rate = median([run.rate for run in runs])
        node_cpu = median([run.cpu_us for run in runs])
        ratio = node_rate / ref_rate
        verdict = "PASS" if ratio >= TARGET_RATIO and not failures else "MISS"
        print(
            f"inbox_throughput: {label(w)}: {node_rate:.1f} envelopes/s (median of {[round(r.rate, 1) for r in runs]}),"
            f" server CPU {node_cpu:.0f} µs/envelope (all its processes); reference/node CPU = {ref_cpu / node_cpu:.2f}"
        )
        print(
            f"RESULT inbox_throughput [{label(w)}]: node/reference = {ratio:.2f} (target >= {TARGET_RATIO}: {verdict}); "
            f"node {node_rate:.0f}/s, reference {ref_rate:.0f}/s; CPU per request {node_cpu:.0f} vs {ref_cpu:.0f} µs;"
            f" failures {len(failures)}"
        )
    return 1 if failures else 0


def commit_latency_us(path: Path, count: int = 300) -> tuple[float, float]:
    """(p50 wall, mean CPU) in µs of one INSERT + COMMIT, as the reference does per request."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    walls = []
    cpu0 = time.process_time()
    for _ in range(count):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (body) VALUES (?)", (os.urandom(4800),))
        conn.execute("COMMIT")
        walls.append((time.perf_counter() - t0) * 1e6)
    cpu = (time.process_time() - cpu0) / count * 1e6
    conn.close()
    return median(walls), cpu


def label(workers: int) -> str:
    return "node" if workers == 0 else f"node+{workers} front{'s' if workers > 1 else ''}"


def reference_run(
    work: Path,
    r: int,
    items: list[Item],
    args: argparse.Namespace,
    client_key: object,
    server_seed: bytes,
    server_key: ed25519.Ed25519PublicKey,
) -> Run:
    port = free_port()
    folder = work / f"ref-{r}"
    folder.mkdir()
    client_pub = client_key.public_key().public_bytes_raw().hex()  # type: ignore[attr-defined]
    server = Proc(
        [sys.executable, str(ROOT / "bench" / "ref_inbox_server.py"), "--port", str(port), "--db", str(folder / "ref.db")],
        folder / "ref.log",
        env={"BENCH_REF_SERVER_SEED": server_seed.hex(), "BENCH_REF_CLIENT_KEY": client_pub},
        ready_url=f"http://127.0.0.1:{port}/ready",
    )
    stored = (folder / "ref.db", "SELECT count(*) FROM inbox", "rows")
    return bare_server_run("reference", server, port, stored, items, args, server_key)


def floor_run(
    work: Path, r: int, pristine: Path, items: list[Item], args: argparse.Namespace,
    node_key: ed25519.Ed25519PublicKey,
) -> Run:
    folder = work / f"floor-{r}"
    shutil.copytree(pristine, folder)
    port = free_port()
    server = Proc(
        [sys.executable, str(ROOT / "bench" / "floor_inbox_server.py"), "--port", str(port), "--data-dir", str(folder)],
        work / f"floor-{r}.log",
        ready_url=f"http://127.0.0.1:{port}/ready",
    )
    stored = (folder / "node.db", "SELECT count(*) FROM deals WHERE origin = 'referral'", "deals")
    return bare_server_run("floor", server, port, stored, items, args, node_key)


def bare_server_run(
    name: str, server: Proc, port: int, stored: tuple[Path, str, str], items: list[Item],
    args: argparse.Namespace, answer_key: ed25519.Ed25519PublicKey,
) -> Run:
    """Fire the load at a reference or floor server: its answers must be signed with
    ``answer_key``, and its database must then count (``stored``: file, query, what) a
    row for each item."""
    with server:
        elapsed, cpu, results = asyncio.run(
            fire(f"http://127.0.0.1:{port}/inbox", items, args.warmup, args.concurrency, server.pid)
        )
    db, query, what = stored
    with sqlite3.connect(db) as conn:
        count = conn.execute(query).fetchone()[0]
    failures, checked = check_ref_answers(items[args.warmup :], results, answer_key, args.verify_sample)
    if count != len(items):
        failures.append(f"{name} stored {count} {what}, expected {len(items)}")
    return Run(name, elapsed, len(results), failures, [x[2] for x in results], checked, cpu)


def start_py_spy(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """Sample every thread of ``pid`` (collapsed stacks, one line per stack) until SIGINT."""
    output.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [
            "py-spy",
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--threads",
            "--nonblocking",
            "--subprocesses",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # let it attach
    return spy


def node_run(
    work: Path, r: int, workers: int, pristine: Path, node_id: str, items: list[Item], args: argparse.Namespace
) -> Run:
    folder = work / f"node-{r}-w{workers}"
    shutil.copytree(pristine, folder)  # a fresh copy: same keys and peers, empty inbox
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "REFNODE_PORT": str(port),
        "REFNODE_PUBLIC_URL": url,
        "REFNODE_LOG_LEVEL": args.node_log_level,
        "REFNODE_INBOX_WORKERS": str(workers),
    }
    with node_proc(folder / "refnode.toml", url, work / f"node-{r}-w{workers}.log", env) as proc:
        with urllib.request.urlopen(url + "/.well-known/refnode", timeout=5) as response:  # noqa: S310
            _, node_keys = verify_discovery(response.read(), expected_node_id=node_id)
        spy = start_py_spy(proc.pid, args.py_spy / f"node-{r}-w{workers}.txt") if args.py_spy else None
        try:
            elapsed, cpu, results = asyncio.run(
                fire(url + INBOX_PATH, items, args.warmup, args.concurrency, proc.pid)
            )
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its output and exits
                spy.wait(timeout=30)
    with sqlite3.connect(folder / "node.db") as conn:
        inbox = conn.execute("SELECT count(*) FROM inbox").fetchone()[0]
        received = conn.execute(
            "SELECT count(*) FROM referrals WHERE side = 'receiver'"
        ).fetchone()[0]
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        deals = conn.execute("SELECT count(*) FROM deals WHERE origin = 'referral'").fetchone()[0]
    failures, checked = check_node_answers(
        items[args.warmup :], results, node_keys, args.verify_sample
    )
    if (inbox, received, deals) != (len(items), len(items), len(items)):
        failures.append(
            f"node stored {inbox} inbox rows, {received} referrals and {deals} deals, expected {len(items)} of each"
        )
    if outbox:
        failures.append(f"the node queued {outbox} outgoing envelopes: the load is not inbox-only")
    return Run(label(workers), elapsed, len(results), failures, [x[2] for x in results], checked, cpu)


if __name__ == "__main__":
    sys.exit(main())
