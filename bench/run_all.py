"""Run every benchmark, one after the other, and print a summary block.

Each benchmark prints its own detail and one ``RESULT`` line with its figures and its
ratio against a reference measured in the same run; this collects those lines.

    python bench/run_all.py            # default sizes, a few minutes in all
    python bench/run_all.py --quick    # smaller sizes, a smoke test of the benchmarks
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    # (script, default arguments, --quick arguments)
    ("inbox_throughput.py", ["--floor"], ["--floor", "--envelopes", "400", "--warmup", "50", "--rounds", "1"]),
    ("referral_latency.py", [], ["--referrals", "30", "--warmup", "3"]),
    ("idle_memory.py", [], ["--idle-s", "2", "--rounds", "1"]),
    ("csv_import.py", [], ["--rows", "20000", "--wide-rows", "5000", "--ref-s", "1"]),
    ("console_pages.py", [], ["--deals", "5000", "--referrals", "500", "--requests", "50",
                              "--out", str(HERE / "results" / "console_pages-quick.json")]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description="Run all benchmarks and summarise them.")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (a smoke test, not a measurement)"
    )
    args = parser.parse_args()

    summary: list[str] = []
    failed: list[str] = []
    for script, normal, quick in BENCHMARKS:
        cmd = [sys.executable, str(HERE / script), *(quick if args.quick else normal)]
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
