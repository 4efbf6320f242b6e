"""A large CSV import into a running node, and what it does to the requests around it.

A node runs as its own OS process (own data folder, SQLite file and keys). Each CSV file
is POSTed to ``/api/v1/import/contacts`` from this process, streamed from disk in 64 KiB
chunks, while three probes run concurrently, each one request at a time, every
--probe-ms:

- ``discovery``: GET /.well-known/refnode (no database);
- ``api read``: GET /api/v1/users (authenticates, reads the database);
- ``api write``: POST /api/v1/contacts (one contact: waits for the writer).

Reference, in the same run: the same probes for --ref-s seconds with no import running.
Printed per file: the import's time and HTTP status, the size of its answer, the node's
VmRSS before and after and its peak (VmHWM), and for each probe its worst and 99th
percentile latency during the import, with the worst as a ratio of the reference's.

Files (generated in the work folder):

- ``one-column``: 153,023 rows of one column (``first_name``), about 1.1 MB, the file of
  the issue;
- ``wide``: --wide-rows rows (default 100,000) with names, email, phone, address and a
  custom field, about 13 MB: larger than any request body the node reads whole.

With --cli the wide file is imported once more into a fresh node through the real
command line (``python -m node.cli import contacts FILE``), and that process's peak RSS
(``ru_maxrss``) is printed next to the file's size.

    python bench/csv_import.py [--rows 153023] [--wide-rows 100000] [--cli]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from nodeproc import ROOT, make_node, median, node_proc, percentile

PROBES = ("discovery", "api read", "api write")


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} for pid {pid}")


def one_column_file(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("first_name\n")
        for i in range(rows):
            f.write(f"N{i:05x}\n")
    return path


def wide_file(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(
            "first_name,last_name,email,phone,address_line1,address_locality,address_region,"
            "address_postcode,address_country,date_of_birth,custom.source\n"
        )
        for i in range(rows):
            f.write(
                f"Person{i},Surname{i % 997},person{i}@example.com,+61 400 {i % 1000:03d} {i % 997:03d},"
                f'"{i % 300} George St, Level {i % 40}",Sydney,NSW,{2000 + i % 200},AU,'
                f"19{50 + i % 50}-0{1 + i % 9}-1{i % 10},spring expo 2026\n"
            )
    return path


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(65536):
            yield chunk


class Probes:
    """The three probes, each looping one request at a time until stopped."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str, every_s: float) -> None:
        self.session, self.url, self.every_s = session, url, every_s
        self.auth = {"Authorization": f"Bearer {token}"}
        self.latencies: dict[str, list[float]] = {name: [] for name in PROBES}
        self._stop = asyncio.Event()
        self._count = 0

    async def _one(self, name: str) -> None:
        if name == "discovery":
            request = self.session.get(self.url + "/.well-known/refnode")
        elif name == "api read":
            request = self.session.get(self.url + "/api/v1/users", headers=self.auth)
        else:
            self._count += 1
            body = {"first_name": "Probe", "last_name": str(self._count)}
            request = self.session.post(self.url + "/api/v1/contacts", json=body, headers=self.auth)
        started = time.perf_counter()
        async with request as response:
            await response.read()
            if response.status >= 300:
                raise RuntimeError(f"probe {name}: HTTP {response.status}")
        self.latencies[name].append(time.perf_counter() - started)

    async def _loop(self, name: str) -> None:
        while not self._stop.is_set():
            await self._one(name)
            try:
                await asyncio.wait_for(self._stop.wait(), self.every_s)
            except TimeoutError:
                pass

    async def run_while(self, work: asyncio.Future[object] | None, seconds: float = 0.0) -> None:
        """Probe until ``work`` is done (or for ``seconds`` when there is none)."""
        tasks = [asyncio.create_task(self._loop(name)) for name in PROBES]
        try:
            if work is None:
                await asyncio.sleep(seconds)
            else:
                await asyncio.wait([work])
        finally:
            self._stop.set()
            await asyncio.gather(*tasks)


async def import_file(
    session: aiohttp.ClientSession, url: str, token: str, path: Path
) -> tuple[int, int, float, bytes]:
    """POST ``path`` streamed; (status, answer bytes, seconds, answer)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv; charset=utf-8"}
    started = time.perf_counter()
    async with session.post(
        url + "/api/v1/import/contacts", data=file_chunks(path), headers=headers
    ) as response:
        answer = await response.read()
        return response.status, len(answer), time.perf_counter() - started, answer


def show(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no answers"
    return (
        f"{name}: {len(values)} answers, p50 {median(values) * 1000:.1f} ms, "
        f"p99 {percentile(values, 99) * 1000:.1f} ms, worst {max(values) * 1000:.1f} ms"
    )


def written(log_path: Path) -> str:
    """What the node logged of the last import it wrote (its time, and its write
    transaction's), if it says."""
    for line in reversed(log_path.read_text(errors="replace").splitlines()):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "csv import written":
            return f"node: {event['rows']} rows, {event['took_s']} s, write transaction {event['move_s']} s"
    return "node: no import written"


async def measure(
    url: str, token: str, pid: int, files: list[tuple[str, Path]], args: argparse.Namespace,
    log_path: Path,
) -> list[str]:
    results = []
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        reference = Probes(session, url, token, args.probe_ms / 1000)
        await reference.run_while(None, args.ref_s)
        print(f"  reference, no import running, {args.ref_s:g} s:")
        for name in PROBES:
            print(f"    {show(name, reference.latencies[name])}")
        for label, path in files:
            rss_before = status_kib(pid, "VmRSS")
            probes = Probes(session, url, token, args.probe_ms / 1000)
            work = asyncio.ensure_future(import_file(session, url, token, path))
            await probes.run_while(work)
            status, size, took, answer = work.result()
            rss_after, peak = status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM")
            print(
                f"  {label} ({path.stat().st_size / 1e6:.2f} MB): HTTP {status} in {took:.2f} s, "
                f"answer {size / 1000:.1f} KB; node VmRSS {rss_before / 1024:.0f} -> "
                f"{rss_after / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB"
            )
            if status >= 300:
                print(f"    answer: {answer[:300].decode(errors='replace')}")
            else:
                print(f"    {written(log_path)}")
            ratios = []
            for name in PROBES:
                during, ref = probes.latencies[name], reference.latencies[name]
                ratio = max(during) / max(ref) if during and ref else float("nan")
                ratios.append(f"{name} worst {max(during) * 1000:.0f} ms ({ratio:.1f}x)" if during else "")
                print(f"    {show(name, during)}; worst/reference worst = {ratio:.1f}")
            move = written(log_path).rsplit("write transaction ", 1)[-1] if status < 300 else "-"
            results.append(
                f"csv_import {label}: HTTP {status} in {took:.2f} s (write transaction {move}), "
                f"answer {size / 1000:.1f} KB, "
                f"VmRSS {rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MiB (peak "
                f"{peak / 1024:.0f}); " + ", ".join(ratios)
            )
    return results


def cli_import(work: Path, path: Path) -> str:
    """Import ``path`` through the real command line into a fresh node; its peak RSS."""
    config, _ = make_node(work, "Cli")
    with node_proc(config.config_path, config.public_url, work / "cli-node.log"):
        env = {**os.environ, "REFNODE_TOKEN": "", "REFNODE_KEY_PASSPHRASE": ""}
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "--config", str(config.config_path),
             "import", "contacts", str(path)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - started
        assert proc.stdout is not None and proc.stderr is not None
        said = (proc.stdout.read() + proc.stderr.read()).decode(errors="replace").strip()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return (
        f"csv_import cli: {path.stat().st_size / 1e6:.1f} MB file, exit {proc.returncode} in "
        f"{took:.1f} s, CLI peak RSS {usage.ru_maxrss / 1024:.0f} MiB: {said[:200]}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="A large CSV import and the requests around it.")
    parser.add_argument("--rows", type=int, default=153_023, help="rows of the one-column file")
    parser.add_argument("--wide-rows", type=int, default=100_000, help="rows of the wide file (0: none)")
    parser.add_argument("--probe-ms", type=float, default=20.0, help="pause between one probe's requests")
    parser.add_argument("--ref-s", type=float, default=3.0, help="length of the reference probing")
    parser.add_argument("--cli", action="store_true", help="also import the wide file with the CLI")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-csv-", dir=args.workdir))
    try:
        files = [("one-column", one_column_file(work / "one-column.csv", args.rows))]
        if args.wide_rows:
            files.append(("wide", wide_file(work / "wide.csv", args.wide_rows)))
        config, token = make_node(work, "Importer")
        print(f"csv_import: {len(files)} files into one node process, probes every {args.probe_ms:g} ms")
        with node_proc(config.config_path, config.public_url, work / "node.log") as proc:
            time.sleep(1.0)  # settle
            results = asyncio.run(
                measure(config.public_url, token, proc.pid, files, args, work / "node.log")
            )
        if args.cli and args.wide_rows:
            results.append(cli_import(work, files[-1][1]))
            print(f"  {results[-1]}")
    finally:
        if args.keep:
            print(f"  work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for line in results:
        print(f"RESULT {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
