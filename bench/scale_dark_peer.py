"""A dark peer: one peer down with Q envelopes queued for it (100,000 with --full) must not
slow delivery to the others, and must not hold the sender's memory.

Five nodes run as processes on 127.0.0.1: the sender A, three live receivers and the dark
peer D. A connects to each by the real invitation handshake, then D is stopped for good.
A's data folder is copied twice: *reference* as it is, *dark* with Q referral offers to D
queued in its outbox, each sealed and stored by the node's own code (``send_offer``, in
transactions of 2,000, with A stopped).

Runs alternate reference and dark (``--rounds``). In each, A is started with short retry
delays (0.5 s doubling to 2 s: A knocks at D's closed port every 2 s, a busier sender
than the defaults would make it), left idle 5 s, then R referrals go to the live receivers
one at a time, each timed from POST /api/v1/referrals until A has the receipt (polled
every 2 ms, as bench/referral_latency.py). A's VmRSS is read after start, after the idle
time and after the referrals; its peak is VmHWM. Target: the dark runs' p99 within 2x of
the reference runs'; memory: the queue adds nothing that grows with Q.

    python bench/scale_dark_peer.py            # Q = 5,000
    python bench/scale_dark_peer.py --full     # Q = 100,000
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from benchapi import Api, connect, referral_body
from nodeproc import make_node, median, node_proc, percentile, rss_kib

from node.base.config import load_config
from node.base.keystore import KeyStore
from node.federation import referrals
from node.federation.runtime import Node, load_peers
from node.storage.db import Database
from protocol.messages import ReferralOffer

TARGET = 2.0
SHORT_RETRIES = {"REFNODE_RETRY_BASE_DELAY_S": "0.5", "REFNODE_RETRY_MAX_DELAY_S": "2"}


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def serve(folder: Path, work: Path, name: str, log_level: str, extra: dict[str, str] | None = None) -> Any:
    """The node of ``folder`` on the address it was made with (its peers know it there)."""
    url = load_config(folder / "refnode.toml", {}).public_url
    env = {"REFNODE_LOG_LEVEL": log_level, **(extra or {})}
    proc = node_proc(folder / "refnode.toml", url, work / f"{name}.log", env)
    proc.url = url  # type: ignore[attr-defined]
    return proc


async def handshakes(sender: tuple[str, str], receivers: list[tuple[str, str]]) -> list[str]:
    async with aiohttp.ClientSession() as session:
        a = Api(session, *sender)
        return [(await connect(a, Api(session, *r), name="Agency"))[0] for r in receivers]


def queue_for(folder: Path, connection_id: str, count: int, log: Any) -> float:
    """Seal and store ``count`` offers to the peer of ``connection_id`` with the node's own
    code, A stopped; returns the seconds it took."""
    t0 = time.perf_counter()
    config = load_config(folder / "refnode.toml", {})
    db = Database(config.database_path)
    try:
        node = Node(config, KeyStore.load(config.keys_dir, None), db)
        node.peers.update(db.run(load_peers))
        body = referral_body(connection_id, "x")
        for start in range(0, count, 2000):
            def batch(conn: sqlite3.Connection, start: int = start) -> None:
                ctx = node.context()
                for i in range(start, min(count, start + 2000)):
                    offer = ReferralOffer.model_validate({**body, "referral_id": f"rfl_dark_{i:06d}", "sent_at": ctx.ts})
                    referrals.send_offer(conn, ctx, offer)

            db.run(batch)
            if start and start % 20000 == 0:
                log(f"    queued {start:,} in {time.perf_counter() - t0:.0f} s")
    finally:
        db.close_sync()
    return time.perf_counter() - t0


async def send_and_time(url: str, token: str, cids: list[str], count: int, tag: str,
                        poll_s: float = 0.002) -> list[float]:
    async with aiohttp.ClientSession() as session:
        api = Api(session, url, token)
        out = []
        for i in range(count):
            t0 = time.perf_counter()
            sent = await api("POST", "/api/v1/referrals", referral_body(cids[i % len(cids)], f"rfl_{tag}_{i:05d}"),
                             expect=202)
            local_id = sent["referral"]["local_id"]
            while True:
                state = (await api("GET", f"/api/v1/referrals/{local_id}"))["referral"]["state"]
                if state == "delivered":
                    break
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError(f"referral {local_id} still {state} after 60 s")
                await asyncio.sleep(poll_s)
            out.append(time.perf_counter() - t0)
        return out


def queued(folder: Path, peer: str) -> tuple[int, int]:
    db = sqlite3.connect(f"file:{folder / 'node.db'}?mode=ro", uri=True)
    row = db.execute("SELECT count(*), coalesce(max(attempts), 0) FROM outbox WHERE state = 'pending'"
                     " AND peer_node_id = ?", (peer,)).fetchone()
    db.close()
    return int(row[0]), int(row[1])


def main() -> int:
    parser = argparse.ArgumentParser(description="Delivery to live peers while one peer is dark with a queue.")
    parser.add_argument("--full", action="store_true", help="Q = 100,000 queued envelopes")
    parser.add_argument("--queued", type=int, help="Q (default 5,000; 100,000 with --full)")
    parser.add_argument("--referrals", type=int, default=200, help="R timed referrals per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--idle-s", type=float, default=5.0)
    parser.add_argument("--node-log-level", default="info")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    args.queued = args.queued or (100_000 if args.full else 5_000)

    work = Path(tempfile.mkdtemp(prefix="bench-dark-peer-", dir=args.workdir))
    runs: dict[str, list[dict[str, Any]]] = {"reference": [], "dark": []}
    try:
        print(f"scale_dark_peer: Q={args.queued:,} envelopes queued for a dark peer, R={args.referrals} referrals "
              f"per run to 3 live peers, {args.rounds} rounds", flush=True)
        made = {name: make_node(work, name) for name in ("Agency", "Live1", "Live2", "Live3", "Dark")}
        procs = {name: serve(cfg.data_dir, work, f"setup-{name}", "warning") for name, (cfg, _) in made.items()}
        for p in procs.values():
            p.start()
        live = ["Live1", "Live2", "Live3"]
        try:
            cids = asyncio.run(handshakes((procs["Agency"].url, made["Agency"][1]),
                                          [(procs[n].url, made[n][1]) for n in [*live, "Dark"]]))
        finally:
            for p in procs.values():
                p.stop()
        dark_cid, live_cids = cids[-1], cids[:-1]
        dark_node = KeyStore.load(made["Dark"][0].keys_dir, None).node_id
        agency = made["Agency"][0].data_dir
        shutil.copytree(agency, work / "reference")
        shutil.copytree(agency, work / "dark")
        took = queue_for(work / "dark", dark_cid, args.queued, lambda line: print(line, flush=True))
        size = (work / "dark" / "node.db").stat().st_size
        print(f"  queued {args.queued:,} offers for the dark peer in {took:.0f} s; the sender's database is "
              f"{size / 2**20:.0f} MiB", flush=True)
        receivers = {n: serve(made[n][0].data_dir, work, f"live-{n}", args.node_log_level) for n in live}
        for p in receivers.values():
            p.start()
        try:
            for r in range(args.rounds):
                for which in ("reference", "dark"):
                    runs[which].append(one_run(args, work, which, r, made["Agency"][1], live_cids))
                    run = runs[which][-1]
                    print(f"  round {r + 1} {which:>9}: ready in {run['ready_s']:.2f} s, p50 "
                          f"{percentile(run['ms'], 50):.1f} p99 {percentile(run['ms'], 99):.1f} max "
                          f"{max(run['ms']):.1f} ms; VmRSS after start {run['rss'][0] / 1024:.1f}, after "
                          f"{args.idle_s:g} s idle {run['rss'][1] / 1024:.1f}, after the referrals "
                          f"{run['rss'][2] / 1024:.1f} MiB, peak {run['hwm'] / 1024:.1f} MiB", flush=True)
        finally:
            for p in receivers.values():
                p.stop()
        left, attempts = queued(work / "dark", dark_node)
    finally:
        if args.keep:
            print(f"  (kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report(args, runs, left, attempts)


def one_run(args: argparse.Namespace, work: Path, which: str, r: int, token: str, cids: list[str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    with serve(work / which, work, f"{which}-{r}", args.node_log_level, SHORT_RETRIES) as proc:
        ready = time.perf_counter() - t0
        rss = [rss_kib(proc.pid)]
        time.sleep(args.idle_s)
        rss.append(rss_kib(proc.pid))
        seconds = asyncio.run(send_and_time(proc.url, token, cids, args.referrals, f"{which[0]}{r}"))
        rss.append(rss_kib(proc.pid))
        hwm = vm_hwm_kib(proc.pid)
    return {"ms": [s * 1000 for s in seconds], "rss": rss, "hwm": hwm, "ready_s": ready}


def report(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]], left: int, attempts: int) -> int:
    p99 = {w: median([percentile(run["ms"], 99) for run in runs[w]]) for w in runs}
    p50 = {w: median([percentile(run["ms"], 50) for run in runs[w]]) for w in runs}
    hwm = {w: median([run["hwm"] / 1024 for run in runs[w]]) for w in runs}
    idle = {w: median([run["rss"][1] / 1024 for run in runs[w]]) for w in runs}
    ratio = p99["dark"] / p99["reference"]
    problems = []
    if left != args.queued:
        problems.append(f"{left} of the {args.queued} queued envelopes are still pending, expected all")
    print(f"  the dark peer's queue after the runs: {left:,} pending, its head tried {attempts} times")
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(f"RESULT scale_dark_peer [Q={args.queued:,}]: live peers' p99 {p99['dark']:.1f} ms with the dark queue, "
          f"{p99['reference']:.1f} ms without = {ratio:.2f}x (target <= {TARGET:g}x: {verdict}); p50 "
          f"{p50['dark']:.1f} vs {p50['reference']:.1f} ms; sender VmRSS idle {idle['dark']:.1f} vs "
          f"{idle['reference']:.1f} MiB, peak {hwm['dark']:.1f} vs {hwm['reference']:.1f} MiB")
    for p in problems:
        print(f"  PROBLEM {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
