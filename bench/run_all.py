"""Run every benchmark, one after the other, and print a summary block.

Each benchmark prints its own detail and one ``RESULT`` line (or several) with its figures
and its ratio against a reference measured in the same run; this collects those lines.

Two groups: the *core* benchmarks (inbox throughput, referral latency, CSV import, the
console's pages) and the
four *scale* ones (a node with a million rows, a federation of nodes, a dark peer, idle
memory). The scale ones run at quick sizes by default and at the sizes of issue 16 with
``--full``: 1,000,000 deals, contacts and referrals; 100 nodes and 10,000 referrals;
100,000 envelopes queued for the dark peer. A full run takes hours on 2 cores, most of it
making the million rows: ``--cache DIR`` keeps them for the next run.

    python bench/run_all.py                    # core at their sizes, scale at quick sizes
    python bench/run_all.py --full --cache /var/tmp/refnode-bench
    python bench/run_all.py --only scale       # or core; --quick: smallest sizes, a smoke test
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (script, group, default arguments, --quick arguments, --full arguments)
BENCHMARKS: list[tuple[str, str, list[str], list[str], list[str]]] = [
    ("inbox_throughput.py", "core", ["--floor"], ["--floor", "--envelopes", "400", "--warmup", "50", "--rounds", "1"],
     ["--floor"]),
    ("referral_latency.py", "core", [], ["--referrals", "30", "--warmup", "3"], []),
    ("csv_import.py", "core", [], ["--rows", "20000", "--wide-rows", "5000", "--ref-s", "1"], []),
    ("console_pages.py", "core", [], ["--deals", "5000", "--referrals", "500", "--requests", "50",
                                      "--out", str(HERE / "results" / "console_pages-quick.json")], []),
    ("idle_memory.py", "scale", ["--peers", "8"], ["--peers", "8", "--idle-s", "2", "--rounds", "1"],
     ["--peers", "8", "--rounds", "3"]),
    ("scale_data.py", "scale", [], ["--rows", "5000", "--envelopes", "300", "--samples", "60", "--rounds", "1"],
     ["--full"]),
    ("scale_dark_peer.py", "scale", [], ["--queued", "1000", "--referrals", "40", "--rounds", "1", "--idle-s", "2"],
     ["--full"]),
    ("scale_federation.py", "scale", [], ["--nodes", "5", "--referrals", "100"], ["--full"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description="Run all benchmarks and summarise them.")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="small sizes (a smoke test, not a measurement)")
    sizes.add_argument("--full", action="store_true", help="the scale benchmarks at the sizes of issue 16")
    parser.add_argument("--only", choices=("core", "scale"), help="run one group")
    parser.add_argument("--cache", type=Path, help="bench/scale_data.py keeps its data folders here")
    args = parser.parse_args()

    summary: list[str] = []
    failed: list[str] = []
    for script, group, normal, quick, full in BENCHMARKS:
        if args.only and group != args.only:
            continue
        extra = quick if args.quick else full if args.full else normal
        if script == "scale_data.py" and args.cache:
            extra = [*extra, "--cache", str(args.cache)]
        cmd = [sys.executable, str(HERE / script), *extra]
        print(f"$ {' '.join(cmd[1:])}", flush=True)
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=HERE.parent
        )
        assert proc.stdout is not None
        results = []
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith("RESULT "):
                results.append(line.removeprefix("RESULT ").rstrip())
        code = proc.wait()
        took = time.perf_counter() - started
        print(f"  ({script}: exit {code}, {took:.0f} s)\n", flush=True)
        summary += results or [f"{script}: no result (exit {code})"]
        if code != 0:
            failed.append(script)

    print("=" * 100)
    print(
        f"SUMMARY ({os.cpu_count()} cores, Python {sys.version.split()[0]}; every ratio is against a "
        f"reference measured in the same run)"
    )
    for line in summary:
        print(f"  {line}")
    if failed:
        print(f"  failed: {', '.join(failed)}")
    print("=" * 100)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
