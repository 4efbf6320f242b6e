"""Console pages at scale: server time of the board, a deal view, the referral list and
the report page with 100,000 deals and 10,000 referrals, next to a bare aiohttp page.

The node's database is built by ``bench/console_data.py`` (the CRM in bulk, the referrals
through the node's own code). The node then runs in this process as ``refnode serve``
runs it (``create_site``, its runner and socket, logs as JSON lines at ``info`` to a
file), and an admin signs in through the sign-in form. The **reference** is a bare
aiohttp application in the same process, on its own port: one handler that returns a
small fixed HTML page.

Server time is taken in-process by a middleware the benchmark puts outermost on both
applications (``time.perf_counter`` around everything the application does for the
request), so the client's own work does not count; the client's round trip is reported
too. Requests go one at a time, interleaved: each round asks for every page once, the
reference first. A deal view opens a different deal each time (referred, received and
plain ones). A page that does not answer 200 is reported as an error, not timed.

    python bench/console_pages.py [--deals 100000] [--referrals 10000] [--requests 200]
                                  [--data DIR] [--path NAME=PATH ...] [--out FILE]

``--data DIR`` keeps the built node in DIR and uses it again on the next run (built when
DIR holds none). Results are printed as a table and written as JSON to
``bench/results/console_pages.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from console_data import ADMIN_EMAIL, Scale, build
from nodeproc import free_port, percentile

from node.base.config import Config
from node.base.logs import configure_logging
from node.base.passwords import hash_password
from node.crm import accounts
from node.http.connections import NodeRunner, connection_cap, listening_sockets, serve_socket
from node.http.serve import settle_gc
from node.storage.db import Database
from node.web.site import create_site

HERE = Path(__file__).resolve().parent
TARGET_P95_MS = 100.0
PASSWORD = "bench console passphrase"  # noqa: S105 (a benchmark's throwaway password)
#: The pages measured by default: (name, path). ``{deal}`` is a different deal each time.
PAGES = [("board", "/deals"), ("deal view", "/deals/{deal}"), ("referral list", "/referrals"),
         ("report page", "/reports"), ("home", "/")]
REFERENCE_HTML = ("<!doctype html><html lang=en><head><meta charset=utf-8><title>Reference</title></head>"
                  "<body><main><h1>Reference</h1><p>A fixed page.</p></main></body></html>")


@dataclass
class Target:
    name: str
    path: str
    url: str = ""
    resolved: str = ""
    error: str | None = None
    server_s: list[float] = field(default_factory=list)
    client_s: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    failures: int = 0

    def summary(self, reference: Target | None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "path": self.path, "resolved": self.resolved or self.path,
                               "error": self.error, "requests": len(self.server_s), "non_200": self.failures}
        if self.server_s and self.error is None:
            server = {f"p{q}": round(percentile(self.server_s, q) * 1000, 3) for q in (50, 95, 99)}
            server["max"] = round(max(self.server_s) * 1000, 3)
            client = {f"p{q}": round(percentile(self.client_s, q) * 1000, 3) for q in (50, 95)}
            out.update(server_ms=server, client_ms=client, bytes_median=sorted(self.sizes)[len(self.sizes) // 2])
            if reference is not None and reference.server_s:
                ref95 = percentile(reference.server_s, 95) * 1000
                out["p95_over_reference"] = round(server["p95"] / ref95, 1)
                out["p95_under_target"] = server["p95"] < TARGET_P95_MS
        return out


Timings = list[tuple[str, float, int]]


def timing_middleware(record: Timings) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Outermost middleware: server time of each request, from the moment the application
    gets it to the answer it returns."""

    @web.middleware
    async def timed(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            record.append((request.path_qs, time.perf_counter() - started, status))

    return timed


def set_password(config: Config) -> None:
    """The admin's password, as the set-password page would store it."""
    db = Database(config.database_path)
    try:
        def write(conn: Any) -> None:
            uid = conn.execute("SELECT id FROM users WHERE email = ?", (ADMIN_EMAIL,)).fetchone()[0]
            accounts.set_password_hash(conn, uid, hash_password(PASSWORD), datetime.now(UTC))
        db.run(write)
    finally:
        db.close_sync()


def prepare(args: argparse.Namespace, work: Path) -> tuple[Config, list[str], dict[str, Any]]:
    """The node's configuration, the deals the deal view opens, and what was built."""
    data = args.data or work / "node"
    meta_path = data / "bench-console.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        print(f"console_pages: using the node built in {data} ({meta['counts']['deals']} deals, "
              f"{meta['counts']['referrals']} referrals)", flush=True)
    else:
        print(f"console_pages: building a node with {args.deals} deals and {args.referrals} referrals ...",
              flush=True)
        started = time.perf_counter()
        built = build(data, Scale(deals=args.deals, referrals=args.referrals, peers=args.peers), port=free_port(),
                      progress=lambda line: print(line, flush=True))
        meta = {"counts": built.counts, "sample_deals": built.sample_deals,
                "build_s": round(time.perf_counter() - started, 1), "timings": built.timings}
        meta_path.write_text(json.dumps(meta))
        print(f"  built in {meta['build_s']} s: " + ", ".join(f"{k} {v}" for k, v in built.counts.items()),
              flush=True)
    config = Config(data_dir=data, port=free_port(), org_name="Summit Mortgage Brokers", log_format="json",
                    log_level=args.node_log_level)
    set_password(config)
    return config, meta["sample_deals"], meta


async def sign_in(http: aiohttp.ClientSession, url: str) -> None:
    """Sign in through the sign-in form, as a person would."""
    async with http.get(url + "/login") as resp:
        found = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
        assert found, "no CSRF token on the sign-in page"
    form = {"csrf": found.group(1), "email": ADMIN_EMAIL, "password": PASSWORD, "next": "/"}
    async with http.post(url + "/login", data=form, allow_redirects=False) as resp:
        if resp.status != 303:
            raise RuntimeError(f"sign-in answered {resp.status}: {(await resp.text())[:300]}")


async def settle(app: web.Application) -> None:
    settle_gc()  # as 'refnode serve' does once it has started


async def reference_page(request: web.Request) -> web.Response:
    return web.Response(text=REFERENCE_HTML, content_type="text/html")


async def measure(args: argparse.Namespace, config: Config, deals: list[str]) -> tuple[Target, list[Target]]:
    record: Timings = []
    app = create_site(config)
    app.middlewares.insert(0, timing_middleware(record))
    app.on_startup.append(settle)
    runner = NodeRunner(app, config, cap=connection_cap(config))
    await runner.setup()
    await serve_socket(runner, listening_sockets(config.host, config.port)[0])
    bare = web.Application(middlewares=[timing_middleware(record)])
    bare.router.add_get("/reference", reference_page)
    bare_runner = web.AppRunner(bare, access_log=None)
    await bare_runner.setup()
    ref_port = free_port()
    await web.TCPSite(bare_runner, "127.0.0.1", ref_port).start()
    reference = Target("reference", "/reference", url=f"http://127.0.0.1:{ref_port}/reference")
    pages = [Target(name, path) for name, path in args.pages]
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar, headers={"Accept": "text/html"}) as http:
            await sign_in(http, config.public_url)
            for page in pages:  # follow redirects once: the page is where they lead
                async with http.get(config.public_url + page.path.replace("{deal}", deals[0])) as resp:
                    await resp.read()
                    if resp.status != 200:
                        page.error = f"HTTP {resp.status}"
                    elif "/login" in resp.url.path:
                        page.error = "sent to sign-in"
                    elif resp.history and "{deal}" not in page.path:
                        page.resolved = resp.url.path_qs
                page.url = config.public_url + (page.resolved or page.path)
                shown = f" -> {page.resolved}" if page.resolved else ""
                print(f"  {page.name:14} {page.path}{shown}: {page.error or 'ok'}", flush=True)
            live = [reference] + [p for p in pages if p.error is None]
            record.clear()
            for n in range(args.warmup + args.requests):
                for target in live:
                    url = target.url.replace("{deal}", deals[n % len(deals)])
                    started = time.perf_counter()
                    async with http.get(url, allow_redirects=False) as resp:
                        body = await resp.read()
                    took = time.perf_counter() - started
                    path, server, status = record.pop()
                    assert url.endswith(path) and not record, (url, path, record)
                    if n < args.warmup:
                        continue
                    if status != 200:
                        target.failures += 1
                        continue
                    target.server_s.append(server)
                    target.client_s.append(took)
                    target.sizes.append(len(body))
    finally:
        await bare_runner.cleanup()
        await runner.cleanup()
    return reference, pages


def report(reference: Target, pages: list[Target], meta: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    ref = reference.summary(None)
    rows = [p.summary(reference) for p in pages]
    print(f"\n{'page':14} {'path':18} {'server p50':>10} {'p95':>8} {'p99':>8} {'max':>8} "
          f"{'client p50':>10} {'p95':>8} {'KB':>6} {'p95/ref':>8}  p95 < 100 ms")
    for row in [ref, *rows]:
        if row.get("error") or "server_ms" not in row:
            print(f"{row['name']:14} {row['path']:18} ERROR: {row.get('error') or 'no 200 answer'}")
            continue
        s, c = row["server_ms"], row["client_ms"]
        ratio = f"{row['p95_over_reference']:.0f}x" if "p95_over_reference" in row else "1x"
        met = {True: "yes", False: "NO"}.get(row.get("p95_under_target"), "")
        print(f"{row['name']:14} {row['resolved'][:18]:18} {s['p50']:10.2f} {s['p95']:8.2f} {s['p99']:8.2f} "
              f"{s['max']:8.2f} {c['p50']:10.2f} {c['p95']:8.2f} {row['bytes_median'] / 1024:6.1f} {ratio:>8}  {met}")
        if row["non_200"]:
            print(f"{'':14} ({row['non_200']} answers were not 200)")
    print("  (server and client times in ms; server time is in-process, around the whole application)")
    result = {"benchmark": "console_pages", "when": datetime.now(UTC).isoformat(timespec="seconds"),
              "commit": commit(),
              "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(),
                          "load_average": [round(x, 2) for x in os.getloadavg()]},
              "data": meta["counts"], "build_s": meta.get("build_s"), "requests_per_page": args.requests,
              "warmup": args.warmup, "target_p95_ms": TARGET_P95_MS, "reference": ref, "pages": rows}
    timed = [r for r in rows if "server_ms" in r]
    parts = [f"{r['name']} p95 {r['server_ms']['p95']:.1f} ms ({r['p95_over_reference']:.0f}x)" for r in timed]
    parts += [f"{r['name']} {r['error'] or 'no 200'}" for r in rows if "server_ms" not in r]
    if "server_ms" in ref:
        print(f"RESULT console_pages: {'; '.join(parts)}; reference p95 {ref['server_ms']['p95']:.3f} ms")
    return result


def commit() -> str | None:
    """The checked-out commit (with ``+`` when the tree has changes), if this is a git clone."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+" if dirty else "")


def main() -> int:
    parser = argparse.ArgumentParser(description="Server time of console pages with a large database.")
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--referrals", type=int, default=10_000)
    parser.add_argument("--peers", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=10, help="rounds not timed")
    parser.add_argument("--path", action="append", default=[], metavar="NAME=PATH",
                        help="measure these pages instead of the default ones (repeat)")
    parser.add_argument("--data", type=Path, help="keep the built node here, and use it again if it is there")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "console_pages.json")
    parser.add_argument("--node-log-level", default="info")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    args.pages = [tuple(p.split("=", 1)) for p in args.path] if args.path else PAGES
    work = Path(tempfile.mkdtemp(prefix="bench-console-"))
    log = open(work / "node.log", "w")  # noqa: SIM115 (closed below)
    try:
        config, deals, meta = prepare(args, work)
        configure_logging("json", args.node_log_level, stream=log)
        print(f"  measuring {args.requests} requests per page after {args.warmup} rounds of warm-up", flush=True)
        reference, pages = asyncio.run(measure(args, config, deals))
        result = report(reference, pages, meta, args)
    finally:
        log.close()
        if args.keep:
            print(f"  work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
