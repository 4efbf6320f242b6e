"""A node holding N deals, contacts and referrals (N = 1,000,000 with --full), against the
same node empty, in the same run: inbox throughput, the admin API's list, search and
report calls, and a streamed CSV export of every contact.

Two data folders are made from one ``refnode init`` with K synthetic connected peers
(bench/inbox_throughput.py's): *empty*, and *full*, filled by bench/bulk_data.py (N of
each, with their contacts' links, notes, status updates, and the envelopes of the
offers). With ``--cache DIR`` both are kept there and used again by later runs of the
same N (each run adds its envelopes to them; ids never repeat).

1. Inbox throughput: M referral-offer envelopes from the K peers, C in flight, into each
   node in turn (rounds alternate empty, full), each round with envelopes of its own.
   Target: full >= 0.9 x empty.
2. API latency, one call at a time, S calls per group in a shuffled order, the node
   otherwise idle; the same calls on the empty node, and a discovery GET (no database)
   as the reference. Groups: *list* (deals and contacts, first page and at an offset up to
   10,000, deals by stage, by owner, by contact; referrals, by side at an offset),
   *search* (contacts and deals by a surname, an email's local part, a phone's digits, a
   street), *report* (the whole history, one month, a 90-day range, one side, as CSV).
   Target: p99 <= 100 ms for each group.
3. GET /api/v1/export/contacts.csv on the full node, read as it comes, while the node's
   VmRSS is sampled every 20 ms: its growth over the RSS before, against the target
   <= 50 MiB; every row is counted.

    python bench/scale_data.py                 # N = 20,000: quick
    python bench/scale_data.py --full --cache /var/tmp/refnode-bench   # N = 1,000,000
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import bulk_data
from inbox_throughput import Item, Sender, fire, make_sender, offer, seed_peers
from nodeproc import free_port, make_node, median, node_proc, percentile, rss_kib

from node.base.keystore import KeyStore
from protocol.envelope import seal_envelope
from protocol.suites import SuiteId
from protocol.wire import INBOX_PATH, MEDIA_TYPE_JOSE_JSON, MessageType

INBOX_TARGET = 0.9
LATENCY_TARGET_MS = 100.0
EXPORT_TARGET_MIB = 50.0
SEED = b"bench/scale_data v1"


@dataclass
class Nodes:
    empty: Path
    full: Path
    token: str
    node_id: str
    senders: list[Sender]
    rows: int


def prepare(args: argparse.Namespace, work: Path) -> Nodes:
    """The two data folders: from the cache, or made (and put in the cache)."""
    home = (args.cache / f"rows-{args.rows}") if args.cache else work / "data"
    ready = home / "ready.json"
    now = datetime.now(UTC)
    if not ready.exists():
        if home.exists():
            shutil.rmtree(home)
        home.mkdir(parents=True)
        t0 = time.perf_counter()
        config, token = make_node(home, "empty")
        made = [make_sender(i, now, SEED) for i in range(args.peers)]
        seed_peers(config.database_path, made, now)
        shutil.copytree(config.data_dir, home / "full")
        print(f"  filling the full node with {args.rows:,} deals, contacts and referrals (bench/bulk_data.py):",
              flush=True)
        peers = [(s.connection_id, s.keys.node_id, str(info["inbox_url"])) for s, info in made]
        bulk_data.fill(home / "full" / "node.db", rows=args.rows, peers=peers,
                       log=lambda line: print(line, flush=True))
        keys = KeyStore.load(config.keys_dir, None)
        ready.write_text(json.dumps({"token": token, "node_id": keys.node_id, "peers": args.peers}))
        print(f"  prepared in {time.perf_counter() - t0:.0f} s", flush=True)
    else:
        print(f"  using the data folders in {home}", flush=True)
    info = json.loads(ready.read_text())
    senders = [make_sender(i, now, SEED)[0] for i in range(info["peers"])]
    return Nodes(home / "empty", home / "full", info["token"], info["node_id"], senders, args.rows)


def seal(nodes: Nodes, count: int, tag: str, now: datetime) -> list[Item]:
    """``count`` offers from the synthetic peers, with ids no other run or round uses."""
    keys = KeyStore.load(nodes.empty / "keys", None)
    recipient = next(k.public for k in keys.decryption_keys.values() if k.crv == "X25519")
    items = []
    for i in range(count):
        sender = nodes.senders[i % len(nodes.senders)]
        message = offer(i, sender.connection_id, now).model_copy(update={"referral_id": f"rfl_{tag}_{i:06d}"})
        envelope_id = f"env_{tag}_{i:06d}"
        body = seal_envelope(message, message_type=MessageType.REFERRAL_OFFER, envelope_id=envelope_id,
                             sender=sender.keys.node_id, recipient=nodes.node_id, now=now,
                             signing_key=sender.signing, suite=SuiteId.X25519_CHACHA, recipient_key=recipient)
        items.append(Item(body, envelope_id, sender.keys.node_id, {"Content-Type": MEDIA_TYPE_JOSE_JSON}))
    return items


def serve(folder: Path, work: Path, name: str, log_level: str) -> Any:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"REFNODE_PORT": str(port), "REFNODE_PUBLIC_URL": url, "REFNODE_LOG_LEVEL": log_level}
    proc = node_proc(folder / "refnode.toml", url, work / f"{name}.log", env)
    proc.url = url  # type: ignore[attr-defined]
    # a start reads the whole file (PRAGMA quick_check, node.storage.integrity): minutes at 15 GiB
    proc.start_timeout_s = 1800.0
    return proc


# --- 1. inbox throughput ---------------------------------------------------------------


def inbox_rounds(args: argparse.Namespace, nodes: Nodes, work: Path) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"empty": [], "full": []}
    tag = f"{int(time.time())}"
    now = datetime.now(UTC)
    for r in range(args.rounds):
        for which in ("empty", "full"):
            items = seal(nodes, args.warmup + args.envelopes, f"{tag}{r}{which[0]}", now)
            folder = nodes.empty if which == "empty" else nodes.full
            with serve(folder, work, f"inbox-{which}-{r}", args.node_log_level) as proc:
                elapsed, cpu, results = asyncio.run(
                    fire(proc.url + INBOX_PATH, items, args.warmup, args.concurrency, proc.pid))
            bad = [r for r in results if r[0] != 200]
            if bad:
                raise RuntimeError(f"{len(bad)} envelopes refused by the {which} node: {bad[0][:2]}")
            rate = len(results) / elapsed
            rates[which].append(rate)
            print(f"  round {r + 1} {which:>5}: {len(results)} envelopes in {elapsed:.2f} s = {rate:7.1f}/s, "
                  f"server CPU {cpu / len(results) * 1e6:.0f} µs each", flush=True)
    return rates


# --- 2. API latency --------------------------------------------------------------------


Pools = dict[str, list[Callable[[], str]]]


def call_pools(db_path: Path, rng: random.Random) -> Pools:
    """The calls of each group, each a function that draws its parameters afresh from
    this node's own data (ids it holds, names of its contacts)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    stages = [r[0] for r in db.execute("SELECT DISTINCT stage_id FROM deals LIMIT 100")]
    owners = [r[0] for r in db.execute("SELECT DISTINCT owner_user_id FROM deals WHERE owner_user_id IS NOT NULL"
                                       " LIMIT 100")]
    top = db.execute("SELECT max(rowid) FROM contacts").fetchone()[0] or 0
    picks = []
    while len(picks) < 500 and top:
        row = db.execute("SELECT id, last_name, email, phone FROM contacts WHERE rowid = ?",
                         (rng.randrange(1, top + 1),)).fetchone()
        if row is not None and all(row):
            picks.append(row)
    deals = db.execute("SELECT count(*) FROM deals").fetchone()[0]
    contacts = db.execute("SELECT count(*) FROM contacts").fetchone()[0]
    received = db.execute("SELECT count(*) FROM referrals WHERE side = 'receiver'").fetchone()[0]
    db.close()
    if not (stages and owners and picks):
        raise RuntimeError(f"{db_path} holds no deals with contacts to draw calls from")

    def at(count: int) -> int:
        return rng.randrange(max(1, min(10_000, count - 100)))

    def q(text: str) -> str:
        return urllib.parse.quote(text, safe="")

    def pick() -> Any:
        return rng.choice(picks)

    def days_ago(lo: int, hi: int) -> date:
        return date.today() - timedelta(days=rng.randrange(lo, hi))

    def month() -> str:
        first = days_ago(30, 700).replace(day=1)
        return f"from={first.isoformat()}&to={(first + timedelta(days=31)).replace(day=1).isoformat()}"

    def quarter() -> str:
        start = days_ago(90, 700)
        return f"from={start.isoformat()}&to={(start + timedelta(days=90)).isoformat()}"

    return {
        "list": [
            lambda: "/api/v1/deals", lambda: f"/api/v1/deals?offset={at(deals)}",
            lambda: f"/api/v1/deals?stage_id={rng.choice(stages)}",
            lambda: f"/api/v1/deals?owner_user_id={rng.choice(owners)}",
            lambda: f"/api/v1/deals?contact_id={pick()[0]}", lambda: "/api/v1/contacts",
            lambda: f"/api/v1/contacts?offset={at(contacts)}", lambda: "/api/v1/referrals",
            lambda: f"/api/v1/referrals?side=receiver&offset={at(received)}",
        ],
        "search": [
            lambda: f"/api/v1/contacts?q={q(pick()[1])}",
            lambda: f"/api/v1/contacts?q={q(pick()[2].split('@')[0])}",
            lambda: f"/api/v1/contacts?q={q(pick()[3][-7:])}",
            lambda: f"/api/v1/deals?q={q(pick()[1])}",
            lambda: f"/api/v1/deals?q={q(rng.choice(bulk_data.STREETS))}",
            lambda: f"/api/v1/deals?q={q(pick()[2].split('@')[0])}",
        ],
        "report": [
            lambda: "/api/v1/reports/referrals", lambda: f"/api/v1/reports/referrals?{month()}",
            lambda: f"/api/v1/reports/referrals?{quarter()}", lambda: "/api/v1/reports/referrals?side=sender",
            lambda: "/api/v1/reports/referrals.csv",
        ],
    }


async def timed_calls(url: str, token: str, pools: Pools, samples: int,
                      warmup: int) -> dict[str, list[tuple[str, float]]]:
    """``samples`` calls per group (after ``warmup`` untimed ones), one at a time, in a
    shuffled order; (path, seconds) per group. The reference group is a discovery GET."""
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(3)
    async with aiohttp.ClientSession(headers=headers) as session:

        async def get(path: str) -> float:
            t0 = time.perf_counter()
            async with session.get(url + path) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {path} -> {response.status}: {(await response.text())[:300]}")
            return time.perf_counter() - t0

        groups = ("list", "search", "report", "reference")
        order = [g for g in groups for _ in range(samples)]
        rng.shuffle(order)
        out: dict[str, list[tuple[str, float]]] = {g: [] for g in groups}
        for i, group in enumerate(rng.choices(groups, k=warmup) + order):
            path = "/.well-known/refnode" if group == "reference" else rng.choice(pools[group])()
            took = await get(path)
            if i >= warmup:
                out[group].append((path, took))
        return out


def api_latency(args: argparse.Namespace, nodes: Nodes, work: Path) -> dict[str, dict[str, list[tuple[str, float]]]]:
    out = {}
    for which in ("full", "empty"):
        folder = nodes.full if which == "full" else nodes.empty
        pools = call_pools(folder / "node.db", random.Random(16))
        with serve(folder, work, f"api-{which}", args.node_log_level) as proc:
            out[which] = asyncio.run(timed_calls(proc.url, nodes.token, pools, args.samples, args.api_warmup))
    return out


def latency_line(label: str, calls: list[tuple[str, float]]) -> str:
    ms = [t * 1000 for _, t in calls]
    worst = max(calls, key=lambda c: c[1])
    return (f"  {label:<16} n={len(ms):4d}  p50 {percentile(ms, 50):7.1f}  p95 {percentile(ms, 95):7.1f}  "
            f"p99 {percentile(ms, 99):7.1f}  "
            f"max {max(ms):7.1f} ms  (slowest: {worst[0][:80]})")


# --- 3. streamed export ----------------------------------------------------------------


async def read_export(url: str, token: str, pid: int) -> dict[str, Any]:
    """GET the contacts CSV, counting rows as they come, while VmRSS is sampled."""
    before = rss_kib(pid)
    samples = [before]
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append(rss_kib(pid))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    timeout = aiohttp.ClientTimeout(total=3600)
    t0 = time.perf_counter()
    size = lines = 0
    tail = b""
    head = b""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}, timeout=timeout) as session:
        async with session.get(url + "/api/v1/export/contacts.csv") as response:
            if response.status != 200:
                raise RuntimeError(f"export -> {response.status}")
            async for chunk in response.content.iter_chunked(256 * 1024):
                if not head:
                    head = chunk[:2000]
                size += len(chunk)
                lines += chunk.count(b"\n")
                tail = (tail + chunk)[-2000:]
    took = time.perf_counter() - t0
    done.set()
    await sampler
    return {"before_kib": before, "peak_kib": max(samples), "after_kib": rss_kib(pid), "bytes": size,
            "lines": lines, "seconds": took, "head": head, "tail": tail, "samples": len(samples)}


def export_run(args: argparse.Namespace, nodes: Nodes, work: Path) -> dict[str, Any]:
    with serve(nodes.full, work, "export", args.node_log_level) as proc:
        # the node as the export finds it after some use: one page of each list first
        asyncio.run(timed_calls(proc.url, nodes.token, call_pools(nodes.full / "node.db", random.Random(5)), 3, 0))
        result = asyncio.run(read_export(proc.url, nodes.token, proc.pid))
    db = sqlite3.connect(f"file:{nodes.full / 'node.db'}?mode=ro", uri=True)
    result["contacts"] = db.execute("SELECT count(*) FROM contacts").fetchone()[0]
    db.close()
    rows = list(csv.reader(io.StringIO(result["head"].decode("utf-8", "replace"))))
    result["header"] = rows[0] if rows else []
    return result


# --- main ------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description="A node with N deals, contacts and referrals, against it empty.")
    parser.add_argument("--full", action="store_true", help="the issue's size: N = 1,000,000, M = 2000, S = 300")
    parser.add_argument("--rows", type=int, help="N (default 20,000; 1,000,000 with --full)")
    parser.add_argument("--peers", type=int, default=16, help="synthetic connected peers (K)")
    parser.add_argument("--envelopes", type=int, help="M per inbox run (default 1000; 2000 with --full)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed envelopes first in each run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="empty+full inbox rounds, alternating")
    parser.add_argument("--samples", type=int, help="API calls per group (default 150; 300 with --full)")
    parser.add_argument("--api-warmup", type=int, default=20)
    parser.add_argument("--cache", type=Path, help="keep the data folders here and use them again")
    parser.add_argument("--parts", default="inbox,api,export", help="which measurements (comma-separated)")
    parser.add_argument("--node-log-level", default="info")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    args.rows = args.rows or (1_000_000 if args.full else 20_000)
    args.envelopes = args.envelopes or (2000 if args.full else 1000)
    args.samples = args.samples or (300 if args.full else 150)

    work = Path(tempfile.mkdtemp(prefix="bench-scale-data-", dir=args.workdir))
    try:
        print(f"scale_data: N={args.rows:,} deals, contacts and referrals; inbox M={args.envelopes} x "
              f"{args.rounds} rounds, C={args.concurrency}, K={args.peers}; {args.samples} API calls per group",
              flush=True)
        nodes = prepare(args, work)
        size = (nodes.full / "node.db").stat().st_size
        print(f"  full node database: {size / 2**30:.2f} GiB", flush=True)
        parts = set(args.parts.split(","))
        rates = inbox_rounds(args, nodes, work) if "inbox" in parts else None
        latency = api_latency(args, nodes, work) if "api" in parts else None
        export = export_run(args, nodes, work) if "export" in parts else None
    finally:
        if args.keep:
            print(f"  (kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report(args, rates, latency, export)


def report(args: argparse.Namespace, rates: dict[str, list[float]] | None, latency: dict[str, Any] | None,
           export: dict[str, Any] | None) -> int:
    problems = []
    verdict = lambda ok: "PASS" if ok else "MISS"  # noqa: E731
    if rates is not None:
        full, empty = median(rates["full"]), median(rates["empty"])
        ratio = full / empty
        print(f"  inbox: full {full:.0f}/s (rounds {[round(r) for r in rates['full']]}), "
              f"empty {empty:.0f}/s (rounds {[round(r) for r in rates['empty']]})")
        print(f"RESULT scale_data [inbox, N={args.rows:,}]: full/empty = {ratio:.2f} (target >= {INBOX_TARGET}: "
              f"{verdict(ratio >= INBOX_TARGET)}); full {full:.0f}/s, empty {empty:.0f}/s")
    if latency is not None:
        for which in ("full", "empty"):
            print(f"  API on the {which} node, one call at a time:")
            for group in ("list", "search", "report", "reference"):
                print(latency_line(group, latency[which][group]))
        groups = ("list", "search", "report")
        p99 = {g: percentile([t * 1000 for _, t in latency["full"][g]], 99) for g in groups}
        p99_empty = {g: percentile([t * 1000 for _, t in latency["empty"][g]], 99) for g in groups}
        ref = percentile([t * 1000 for _, t in latency["full"]["reference"]], 99)
        print(f"RESULT scale_data [api, N={args.rows:,}]: p99 list {p99['list']:.1f} ms, search "
              f"{p99['search']:.1f} ms, report {p99['report']:.1f} ms (target <= {LATENCY_TARGET_MS:.0f}: "
              f"{verdict(max(p99.values()) <= LATENCY_TARGET_MS)}); empty node {p99_empty['list']:.1f} / "
              f"{p99_empty['search']:.1f} / {p99_empty['report']:.1f} ms; discovery GET p99 {ref:.2f} ms")
    if export is not None:
        growth = (export["peak_kib"] - export["before_kib"]) / 1024
        rows = export["lines"] - 1
        print(f"  export: {rows:,} rows ({export['contacts']:,} contacts), {export['bytes'] / 2**20:.0f} MiB in "
              f"{export['seconds']:.1f} s ({rows / export['seconds']:,.0f} rows/s); node VmRSS before "
              f"{export['before_kib'] / 1024:.1f} MiB, peak {export['peak_kib'] / 1024:.1f} MiB, after "
              f"{export['after_kib'] / 1024:.1f} MiB ({export['samples']} samples)")
        if rows != export["contacts"]:
            problems.append(f"the export has {rows} rows for {export['contacts']} contacts")
        print(f"RESULT scale_data [export, N={args.rows:,}]: RSS growth {growth:.1f} MiB (target <= "
              f"{EXPORT_TARGET_MIB:.0f}: {verdict(growth <= EXPORT_TARGET_MIB)}); {rows:,} rows in "
              f"{export['seconds']:.1f} s")
    for p in problems:
        print(f"  PROBLEM {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
