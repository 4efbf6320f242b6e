"""A federation: N nodes as processes on 127.0.0.1 (100 with --full) form a full mesh,
N(N-1)/2 connections, each by the real invitation handshake over the admin APIs, then send
F referrals (10,000 with --full) between random pairs.

Measured:
- the time to form the mesh: from the first invitation until every pair is active on both
  sides (target with --full: under 60 s), with the handshakes H at a time;
- each handshake's time under that load, from the connect call until the requester is
  active, p50 and p99. The nodes are not polled meanwhile: the benchmark follows their
  logs (JSON lines, level info) for the connection-accept and connection-confirm each
  node accepts, and takes the time from the log line;
- the time to deliver everything: from the first referral sent until no node holds one
  undelivered (each node's report: no referral left 'sent'), with the referrals sent C
  at a time through the senders' admin APIs;
- exactly once: every node holds exactly the referrals sent to it (their ids, each once)
  and has sent exactly those it was asked to;
- the nodes' total VmRSS, idle after start, after the mesh, and after the referrals.
Reference, in the same run: one handshake between two otherwise idle nodes of the mesh
before it forms, and the mean of N idle nodes' VmRSS.

``--py-spy DIR`` records three nodes during the mesh with py-spy (``pip install py-spy``):
where the time goes, when the target is missed.

``--compare CHECKOUT`` runs half the nodes (those numbered 1 or 2 modulo 4: as many
requesters as responders in each half, as node i asks node j when i < j) from another
checkout of this project (the same schema: the nodes are initialised by this one), and
prints the nodes' CPU a handshake during the mesh, and a referral during the referrals,
for each half (a referral's sender and receiver are drawn at random). Both halves share the
machine, its load and its moment, so a change to the node's cost shows in one run where
whole runs of each code differ by more from one hour to the next.

    python bench/scale_federation.py              # N = 10, F = 500
    python bench/scale_federation.py --full       # N = 100, F = 10,000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from benchapi import Api, referral_body
from nodeproc import (
    ROOT,
    Proc,
    cpu_seconds,
    make_node,
    percentile,
    rss_kib,
    serve_command,
    wait_http,
)

from node.base.keystore import KeyStore  # noqa: E402

MESH_TARGET_S = 60.0


def init_one(work: Path, i: int, port: int) -> tuple[Path, str, str, str]:
    """``refnode init`` node i; (config path, its URL, its admin token, its node id)."""
    config, token = make_node(work, f"n{i:03d}", port=port)
    return config.config_path, config.public_url, token, KeyStore.load(config.keys_dir, None).node_id


def free_ports(count: int) -> list[int]:
    """``count`` different free ports (all held open while they are chosen)."""
    held = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        held.append(s)
    ports = [s.getsockname()[1] for s in held]
    for s in held:
        s.close()
    return ports


class Nodes:
    def __init__(self, made: list[tuple[Path, str, str, str]], work: Path, log_level: str,
                 compare: Path | None = None) -> None:
        self.made, self.work = made, work
        #: Where each node runs from: this checkout, or (with ``compare``) another.
        self.roots = [compare if compare is not None and compared(i) else ROOT for i in range(len(made))]
        cmd = [(serve_command(path)[0], url) for path, url, _, _ in made]
        self.procs = [Proc(c, work / f"n{i:03d}.log", env={"REFNODE_LOG_FORMAT": "json", "REFNODE_LOG_LEVEL": log_level,
                                                             "REFNODE_KEY_PASSPHRASE": None, "REFNODE_TOKEN": None})
                      for i, (c, _) in enumerate(cmd)]

    def start(self) -> float:
        t0 = time.perf_counter()
        for p, root in zip(self.procs, self.roots, strict=True):  # all at once, then wait for each
            log = open(p.log_path, "ab")  # noqa: SIM115 (the child keeps it)
            # ``python -m node.cli`` imports the node from its working folder
            p.proc = subprocess.Popen(p.cmd, stdout=log, stderr=subprocess.STDOUT, env=p.env, cwd=root)
            log.close()
        for p, (_, url, _, _) in zip(self.procs, self.made, strict=True):
            assert p.proc is not None
            wait_http(url + "/.well-known/refnode", p.proc, p.log_path, timeout_s=600)
        return time.perf_counter() - t0

    def stop(self) -> None:
        for p in self.procs:
            if p.proc is not None and p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.stop()

    def rss_mib(self) -> list[float]:
        return [rss_kib(p.pid) / 1024 for p in self.procs]

    def node_index(self, node_id: str) -> int:
        return next(k for k, (*_, nid) in enumerate(self.made) if nid == node_id)

    def cpu_s(self) -> float:
        """CPU time used so far by every node process."""
        return sum(self.each_cpu_s())

    def each_cpu_s(self) -> list[float]:
        return [cpu_seconds(p.pid) for p in self.procs]


def compared(i: int) -> bool:
    """Whether node i runs from the ``--compare`` checkout."""
    return i % 4 in (1, 2)


def own_cpu_s() -> float:
    """CPU time this process (the benchmark's client) used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Watcher:
    """Follows every node's log (JSON lines, level info) for the handshake's last steps: a
    requester is active when it accepts the responder's connection-accept, a responder when
    it accepts the connection-confirm. The time is the log line's own: the nodes are not
    asked anything while the mesh forms."""

    def __init__(self, logs: list[Path], node_ids: list[str]) -> None:
        self.logs, self.index = logs, {nid: k for k, nid in enumerate(node_ids)}
        # Kept open, and read on from where the last poll stopped: opening 100 files 50
        # times a second was most of this client's CPU, taken from the nodes it measures.
        self.files = [open(path, "rb") for path in logs]  # noqa: SIM115 (closed by close())
        self.partial = [b""] * len(logs)
        self.seen: dict[tuple[str, int, int], float] = {}  # (step, at node, from node) -> time
        self.waiting: dict[tuple[str, int, int], asyncio.Event] = {}

    def close(self) -> None:
        for fh in self.files:
            fh.close()

    def poll(self) -> None:
        for k, fh in enumerate(self.files):
            data = fh.read()
            if not data:
                continue
            data = self.partial[k] + data
            end = data.rfind(b"\n") + 1
            self.partial[k] = data[end:]
            for line in data[:end].splitlines():
                if b'"envelope accepted"' not in line or b'"connection-' not in line:
                    continue
                event = json.loads(line)
                step = {"connection-accept": "requester", "connection-confirm": "responder"}.get(event["type"])
                if step is None or event["peer"] not in self.index:
                    continue
                key = (step, k, self.index[event["peer"]])
                if key not in self.seen:
                    self.seen[key] = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
                    if key in self.waiting:
                        self.waiting[key].set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.poll()
            await asyncio.sleep(0.02)

    async def wait(self, step: str, at: int, peer: int, timeout_s: float) -> float:
        key = (step, at, peer)
        if key not in self.seen:
            event = self.waiting.setdefault(key, asyncio.Event())
            await asyncio.wait_for(event.wait(), timeout_s)
        return self.seen[key]


async def handshake(requester: Api, responder: Api, i: int, j: int, watcher: Watcher) -> tuple[float, float, float]:
    """j invites, i connects; (when i asked, when i was active, when j was active), wall clock."""
    invite = await responder("POST", "/api/v1/invitations", {"name": f"n{i:03d}", "direction": "both"}, expect=201)
    asked = time.time()
    await requester("POST", "/api/v1/connections",
                    {"referral_url": invite["referral_url"], "referral_key": invite["referral_key"]}, expect=202)
    active = await watcher.wait("requester", i, j, 600)
    return asked, active, await watcher.wait("responder", j, i, 600)


async def form_mesh(apis: list[Api], pairs: list[tuple[int, int]], concurrency: int, watcher: Watcher,
                    progress: Any) -> tuple[list[float], float]:
    """Connect every pair (requester i, responder j), ``concurrency`` at a time; each
    handshake's time (connect call to requester active) and the mesh's (first invitation to
    the last responder active)."""
    times: list[float] = []
    ends: list[float] = []
    queue = list(pairs)
    start = time.time()

    async def worker() -> None:
        while queue:
            i, j = queue.pop()
            asked, active, done = await handshake(apis[i], apis[j], i, j, watcher)
            times.append(active - asked)
            ends.append(done)
            progress(len(times))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return times, max(ends) - start


async def send_referrals(apis: list[Api], cids: dict[tuple[int, int], str], count: int, concurrency: int,
                         rng: random.Random) -> tuple[dict[int, set[str]], dict[int, int], float]:
    """``count`` referrals from random i to random j; what each node should then hold."""
    n = len(apis)
    plan = []
    for k in range(count):
        i, j = rng.sample(range(n), 2)
        plan.append((i, j, f"rfl_fed_{k:06d}"))
    expected: dict[int, set[str]] = {j: set() for j in range(n)}
    sent: dict[int, int] = dict.fromkeys(range(n), 0)
    for i, j, rid in plan:
        expected[j].add(rid)
        sent[i] += 1
    t0 = time.perf_counter()
    queue = list(reversed(plan))

    async def worker() -> None:
        while queue:
            i, j, rid = queue.pop()
            cid = cids[(i, j)] if (i, j) in cids else cids[(j, i)]
            await apis[i]("POST", "/api/v1/referrals", referral_body(cid, rid), expect=202)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return expected, sent, time.perf_counter() - t0


async def undelivered(apis: list[Api]) -> int:
    """Referrals not yet delivered, over every node (each report's sender-side 'sent')."""
    total = 0
    for api in apis:
        report = await api("GET", "/api/v1/reports/referrals?side=sender")
        total += sum(s["current"] for s in report["statuses"] if s["status"] in ("sent", "failed"))
    return total


async def held(api: Api) -> tuple[list[str], int]:
    """The ids of the referrals a node received (every page), and how many it sent."""
    ids: list[str] = []
    offset = 0
    while True:
        page = await api("GET", f"/api/v1/referrals?side=receiver&limit=1000&offset={offset}")
        ids += [r["id"] for r in page["referrals"]]
        if len(page["referrals"]) < 1000:
            break
        offset += 1000
    report = await api("GET", "/api/v1/reports/referrals?side=sender")
    return ids, report["totals"][0]["sent"]


async def run(args: argparse.Namespace, nodes: Nodes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    timeout = aiohttp.ClientTimeout(total=600)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        apis = [Api(session, url, token) for _, url, token, _ in nodes.made]
        n = len(apis)
        out["idle_rss"] = nodes.rss_mib()
        watcher = Watcher([p.log_path for p in nodes.procs], [nid for *_, nid in nodes.made])
        stop = asyncio.Event()
        watching = asyncio.create_task(watcher.run(stop))
        # reference: one handshake between two idle nodes, before the mesh
        asked, active, _ = await handshake(apis[0], apis[1], 0, 1, watcher)
        out["idle_handshake_s"] = active - asked
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if (i, j) != (0, 1)]
        random.Random(7).shuffle(pairs)
        spies = start_spies(args, nodes)
        each = nodes.each_cpu_s()
        cpu = (sum(each), own_cpu_s())
        last = [time.perf_counter()]

        def progress(done: int) -> None:
            if time.perf_counter() - last[0] > 10:
                last[0] = time.perf_counter()
                print(f"    {done + 1:,} of {len(pairs) + 1:,} connections active", flush=True)

        times, mesh_s = await form_mesh(apis, pairs, args.handshake_concurrency, watcher, progress)
        out["mesh_cpu"] = (nodes.cpu_s() - cpu[0], own_cpu_s() - cpu[1])
        out["mesh_node_cpu"] = [after - before for after, before in zip(nodes.each_cpu_s(), each, strict=True)]
        out["mesh_load"] = os.getloadavg()[0]
        stop.set()
        await watching
        watcher.close()
        stop_spies(spies)
        cids: dict[tuple[int, int], str] = {}
        actives = []
        for k, api in enumerate(apis):
            listed = (await api("GET", "/api/v1/connections"))["connections"]
            actives.append(sum(c["state"] == "active" for c in listed))
            for c in listed:
                if c["role"] == "requester":
                    cids[(k, nodes.node_index(c["peer_node_id"]))] = c["id"]
        out.update(handshake_s=times, mesh_s=mesh_s, connections=len(cids), actives=actives)
        out["mesh_rss"] = nodes.rss_mib()

        rng = random.Random(11)
        cpu = (nodes.cpu_s(), own_cpu_s())
        each = nodes.each_cpu_s()
        t0 = time.perf_counter()
        expected, sent, accept_s = await send_referrals(apis, cids, args.referrals, args.concurrency, rng)
        while (left := await undelivered(apis)) > 0:
            if time.perf_counter() - t0 > args.deliver_timeout_s:
                raise RuntimeError(f"{left} referrals still undelivered after {args.deliver_timeout_s} s")
            await asyncio.sleep(0.5)
        out.update(deliver_s=time.perf_counter() - t0, accept_s=accept_s)
        out["referrals_cpu"] = (nodes.cpu_s() - cpu[0], own_cpu_s() - cpu[1])
        out["referrals_node_cpu"] = [after - before for after, before in zip(nodes.each_cpu_s(), each, strict=True)]
        out["referrals_load"] = os.getloadavg()[0]
        out["referrals_rss"] = nodes.rss_mib()
        problems = []
        for k, api in enumerate(apis):
            ids, sent_here = await held(api)
            if len(ids) != len(set(ids)):
                problems.append(f"node {k} holds {len(ids) - len(set(ids))} referrals twice")
            if set(ids) != expected[k]:
                problems.append(f"node {k} holds {len(set(ids) - expected[k])} unexpected and misses "
                                f"{len(expected[k] - set(ids))} referrals")
            if sent_here != sent[k]:
                problems.append(f"node {k} sent {sent_here} referrals, asked {sent[k]}")
        out["problems"] = problems
        out["received"] = sum(len(v) for v in expected.values())
    return out


def start_spies(args: argparse.Namespace, nodes: Nodes) -> list[subprocess.Popen[bytes]]:
    if not args.py_spy:
        return []
    args.py_spy.mkdir(parents=True, exist_ok=True)
    spies = []
    for k in (0, len(nodes.procs) // 2, len(nodes.procs) - 1):
        spies.append(subprocess.Popen(["py-spy", "record", "--pid", str(nodes.procs[k].pid), "--rate", "100",
                                       "--format", "raw", "--nonblocking", "--output",
                                       str(args.py_spy / f"mesh-node{k:03d}.txt")], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    return spies


def stop_spies(spies: list[subprocess.Popen[bytes]]) -> None:
    for spy in spies:
        spy.send_signal(signal.SIGINT)
    for spy in spies:
        spy.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description="A full mesh of N real nodes, then F referrals between them.")
    parser.add_argument("--full", action="store_true", help="N = 100, F = 10,000")
    parser.add_argument("--nodes", type=int, help="N (default 10; 100 with --full)")
    parser.add_argument("--referrals", type=int, help="F (default 500; 10,000 with --full)")
    parser.add_argument("--handshake-concurrency", type=int, default=64, help="handshakes under way at once (H)")
    parser.add_argument("--concurrency", type=int, default=64, help="referrals being sent at once (C)")
    parser.add_argument("--deliver-timeout-s", type=float, default=1800)
    parser.add_argument("--node-log-level", default="info")
    parser.add_argument("--py-spy", type=Path, metavar="DIR", help="record three nodes during the mesh into DIR")
    parser.add_argument("--compare", type=Path, metavar="CHECKOUT",
                        help="run half the nodes from another checkout; CPU a handshake for each half")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    args.nodes = args.nodes or (100 if args.full else 10)
    args.referrals = args.referrals or (10_000 if args.full else 500)

    work = Path(tempfile.mkdtemp(prefix="bench-federation-", dir=args.workdir))
    nodes = None
    try:
        print(f"scale_federation: N={args.nodes} nodes, {args.nodes * (args.nodes - 1) // 2:,} connections, "
              f"H={args.handshake_concurrency} handshakes at once; F={args.referrals:,} referrals, "
              f"C={args.concurrency} at once", flush=True)
        t0 = time.perf_counter()
        with ProcessPoolExecutor(2) as pool:
            made = list(pool.map(init_one, [work] * args.nodes, range(args.nodes), free_ports(args.nodes)))
        print(f"  {args.nodes} nodes initialised in {time.perf_counter() - t0:.0f} s", flush=True)
        nodes = Nodes(made, work, args.node_log_level, args.compare.resolve() if args.compare else None)
        print(f"  {args.nodes} node processes started and answering in {nodes.start():.0f} s", flush=True)
        time.sleep(3)
        out = asyncio.run(run(args, nodes))
    finally:
        if nodes is not None:
            nodes.stop()
        if args.keep:
            print(f"  (kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report(args, out)


def report(args: argparse.Namespace, out: dict[str, Any]) -> int:
    ms = [t * 1000 for t in out["handshake_s"]]
    n = args.nodes
    total = {k: sum(out[k]) for k in ("idle_rss", "mesh_rss", "referrals_rss")}
    print(f"  mesh: {out['connections']:,} connections in {out['mesh_s']:.1f} s; every node lists "
          f"{min(out['actives'])} to {max(out['actives'])} active connections (expected {n - 1})")
    cpus = os.cpu_count() or 1
    for phase, seconds in (("mesh", out["mesh_s"]), ("referrals", out["deliver_s"])):
        nodes_cpu, client_cpu = out[f"{phase}_cpu"]
        count = out["connections"] if phase == "mesh" else args.referrals
        each = "a handshake" if phase == "mesh" else "a referral"
        print(f"  CPU during the {phase}: nodes {nodes_cpu:.1f} s ({nodes_cpu / max(count, 1) * 1000:.1f} ms {each}), "
              f"this client {client_cpu:.1f} s, of {seconds * cpus:.0f} s on {cpus} cores "
              f"({(nodes_cpu + client_cpu) / (seconds * cpus):.0%} busy; load average {out[f'{phase}_load']:.1f})")
    if args.compare:
        for phase, count, each in (("mesh", out["connections"], "a handshake"),
                                   ("referrals", args.referrals, "a referral")):
            for label, other in (("this checkout", False), (str(args.compare), True)):
                half = [cpu for i, cpu in enumerate(out[f"{phase}_node_cpu"]) if compared(i) is other]
                share = sum(half) / max(len(half), 1) * n
                print(f"  nodes' CPU {each}, {label}: {share / max(count, 1) * 1000:.2f} ms "
                      f"(its half's CPU as if it were every node's)")
    print(f"  handshakes under load: p50 {percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms, max "
          f"{max(ms):.0f} ms; one between two idle nodes: {out['idle_handshake_s'] * 1000:.0f} ms")
    print(f"  referrals: {args.referrals:,} accepted by the senders' APIs in {out['accept_s']:.1f} s, all delivered "
          f"{out['deliver_s']:.1f} s after the first was sent; {out['received']:,} held by their receivers")
    print(f"  VmRSS of the {n} nodes: idle {total['idle_rss'] / 1024:.2f} GiB (mean {total['idle_rss'] / n:.1f} MiB), "
          f"after the mesh {total['mesh_rss'] / 1024:.2f} GiB, after the referrals "
          f"{total['referrals_rss'] / 1024:.2f} GiB (mean {total['referrals_rss'] / n:.1f} MiB, max "
          f"{max(out['referrals_rss']):.1f})")
    problems = list(out["problems"])
    if min(out["actives"]) != n - 1 or max(out["actives"]) != n - 1:
        problems.append("not every node has every other as an active connection")
    verdict = "PASS" if out["mesh_s"] < MESH_TARGET_S and not problems else "MISS"
    print(f"RESULT scale_federation [N={n}, F={args.referrals:,}]: mesh of {out['connections']:,} connections in "
          f"{out['mesh_s']:.1f} s (target < {MESH_TARGET_S:.0f} s: {verdict}), nodes' CPU "
          f"{out['mesh_cpu'][0] / max(out['connections'], 1) * 1000:.1f} ms a handshake; handshake p50 "
          f"{percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms = "
          f"{percentile(ms, 99) / (out['idle_handshake_s'] * 1000):.0f}x one on idle nodes "
          f"({out['idle_handshake_s'] * 1000:.0f} ms); all {args.referrals:,} referrals delivered in "
          f"{out['deliver_s']:.1f} s, exactly once at every node: {'yes' if not out['problems'] else 'NO'}; "
          f"total VmRSS {total['referrals_rss'] / 1024:.2f} GiB ({total['referrals_rss'] / n:.1f} MiB a node)")
    for p in problems[:20]:
        print(f"  PROBLEM {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
