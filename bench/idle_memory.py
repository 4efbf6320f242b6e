"""Resident memory of an idle node, against a bare Python process with the same libraries.

A node is initialised and served as its own OS process; once its discovery endpoint
answers, it is left idle for --idle-s seconds and VmRSS is read from /proc/<pid>/status.
Reference, in the same run: ``python -c "import aiohttp, cryptography, pydantic; ..."``
left idle just as long. Rounds alternate (reference, node, ...) and medians are compared.

The target (issue 16) is 60 MiB or less for the node. It also lists which of the
libraries that only some commands or pages need the idle node has loaded (none should
be): it reads them from the process's memory map.

With ``--sealed`` the node's keys are sealed under a passphrase (REFNODE_KEY_PASSPHRASE),
which the node opens at start with cryptography. With ``--peers K`` the node's database
holds K peers with an ACTIVE connection each before it starts (written as
bench/inbox_throughput.py writes its senders), as an organisation's node has.

    python bench/idle_memory.py [--idle-s 5] [--rounds 2] [--sealed] [--peers K]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from inbox_throughput import make_sender, seed_peers
from nodeproc import make_node, median, node_proc, rss_kib, serve_command

REFERENCE = "import aiohttp, cryptography, pydantic, sys, time; print('ready', flush=True); time.sleep(3600)"
TARGET_MIB = 60.0
#: The key passphrase of ``--sealed`` (a benchmark's, not a secret).
PASSPHRASE = "idle memory benchmark"
#: Shared libraries that only some commands or pages load (argon2 for passwords, Jinja2's
#: markupsafe for pages, numpy for sqlite_utils in migrations; cryptography's Rust bindings,
#: some 7 MiB, with the first key read or signature, which an idle node that serves the
#: discovery document it kept makes none of), as their mapped files show.
OPTIONAL_LIBS = ("_argon2_cffi_bindings", "markupsafe", "numpy", "_yaml", "pygments",
                 "cryptography/hazmat/bindings/_rust")


def optional_libs(pid: int) -> list[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [lib for lib in OPTIONAL_LIBS if f"/{lib}" in maps]


def reference_rss(idle_s: float) -> int:
    proc = subprocess.Popen([sys.executable, "-c", REFERENCE], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("reference process did not start")
        time.sleep(idle_s)
        return rss_kib(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def node_rss(
    work: Path, r: int, idle_s: float, log_level: str, sealed: bool, peers: int
) -> tuple[int, list[str]]:
    config, _ = make_node(work, f"Idle {r}", passphrase=PASSPHRASE.encode() if sealed else None)
    if peers:
        now = datetime.now(UTC)
        seed_peers(config.database_path, [make_sender(i, now) for i in range(peers)], now)
    env: dict[str, str | None] = {"REFNODE_LOG_LEVEL": log_level}
    if sealed:
        env["REFNODE_KEY_PASSPHRASE"] = PASSPHRASE
    with node_proc(config.config_path, config.public_url, work / f"idle-{r}.log", env) as proc:
        time.sleep(idle_s)
        return rss_kib(proc.pid), optional_libs(proc.pid)


def main() -> int:
    parser = argparse.ArgumentParser(description="Idle resident memory of a node process.")
    parser.add_argument("--idle-s", type=float, default=5.0, help="idle time before reading VmRSS")
    parser.add_argument("--rounds", type=int, default=2, help="reference+node pairs, alternating")
    parser.add_argument("--node-log-level", default="info")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--sealed", action="store_true", help="keys sealed under a passphrase")
    parser.add_argument("--peers", type=int, default=0, help="peers with an ACTIVE connection in the database")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-memory-", dir=args.workdir))
    node_kib: list[int] = []
    ref_kib: list[int] = []
    loaded: set[str] = set()
    try:
        _, how = serve_command(work / "x.toml")
        print(
            f"idle_memory: VmRSS after {args.idle_s:g} s idle, {args.rounds} rounds; node runs as: {how}"
            + ("; keys sealed" if args.sealed else "")
            + (f"; {args.peers} peers with active connections" if args.peers else "")
        )
        for r in range(args.rounds):
            ref_kib.append(reference_rss(args.idle_s))
            kib, libs = node_rss(work, r, args.idle_s, args.node_log_level, args.sealed, args.peers)
            node_kib.append(kib)
            loaded.update(libs)
            print(
                f"  round {r + 1}: reference {ref_kib[-1] / 1024:.1f} MiB, node {node_kib[-1] / 1024:.1f} MiB",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    node_mib, ref_mib = median(node_kib) / 1024, median(ref_kib) / 1024
    print('  reference: python -c "import aiohttp, cryptography, pydantic; <sleep>"')
    print(f"  libraries loaded that only some commands or pages need: {', '.join(sorted(loaded)) or 'none'}")
    verdict = "PASS" if node_mib <= TARGET_MIB else "MISS"
    print(
        f"RESULT idle_memory: node {node_mib:.1f} MiB (target <= {TARGET_MIB:.0f}: {verdict}), reference "
        f"{ref_mib:.1f} MiB, node/reference = {node_mib / ref_mib:.2f} (+{node_mib - ref_mib:.1f} MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
