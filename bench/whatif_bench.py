"""What-if loop benchmark, on the published warehouse of `make run`.

    python bench/whatif_bench.py [--set fleet.utilisation=0.70,0.71,0.72] [--repeat 3] [--mode loop|command|both]

loop (the what-if loop issue 29 asks to answer in 5 s): one `tokens2chips whatif --loop` process is fed one
what-if per line on its input; each what-if's time runs from writing its line to reading its `report:` line
(everything the analyst waits for: the assumptions file written and validated, the warehouse copied, the
assets downstream of meta.assumptions re-materialised with the forecasts reused, the report rebuilt). The
process's start (Python, Dagster, the drawing workers) and its first what-if are reported apart.

command: `tokens2chips whatif --set ...`, one process per what-if: its wall time (start-up included) and the
re-materialisation time it prints.

A --set with several comma-separated values takes the next value each round, so that every round is a new
what-if (a repeat of the last value reads its charts back from the cache and measures less).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 5.0


def _rounds(sets: list[str], repeat: int) -> list[list[str]]:
    out = []
    for i in range(repeat):
        this = []
        for item in sets:
            key, _, values = item.partition("=")
            choices = values.split(",")
            this.append(f"{key}={choices[i % len(choices)]}")
        out.append(this)
    return out


def bench_loop(rounds: list[list[str]]) -> list[float]:
    """Seconds per what-if in one warm `whatif --loop` process; the first (start-up included) is reported apart."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", "whatif", "--loop"], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    times = []
    try:
        for i, this in enumerate(rounds):
            sent = time.perf_counter()
            proc.stdin.write(" ".join(this) + "\n")
            proc.stdin.flush()
            summary = []
            for line in proc.stdout:
                summary.append(line)
                if line.lstrip().startswith("report:"):
                    break
            else:
                print(proc.stderr.read(), file=sys.stderr)
                raise SystemExit(f"whatif --loop ended before answering {' '.join(this)}")
            seconds = time.perf_counter() - (started if i == 0 else sent)
            slowest = re.search(r"slowest steps: (.*?);", "".join(summary))
            label = "start-up and first what-if" if i == 0 else f"what-if {i}"
            print(f"loop {label} ({', '.join(this)}): {seconds:.1f} s"
                  + (f" (slowest: {slowest.group(1)})" if slowest else ""), flush=True)
            if i:
                times.append(seconds)
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    return times


def bench_command(rounds: list[list[str]]) -> tuple[list[float], list[float]]:
    """Wall seconds of `whatif --set ...` per process, and the re-materialisation seconds it prints."""
    walls, inner = [], []
    for i, this in enumerate(rounds):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pipelines", "whatif", *[a for s in this for a in ("--set", s)]],
                              cwd=ROOT, capture_output=True, text=True)
        walls.append(time.perf_counter() - started)
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(proc.returncode)
        found = re.search(r"assets downstream of meta.assumptions \(forecasts reused\) in ([\d.]+) s", proc.stdout)
        inner.append(float(found.group(1)) if found else float("nan"))
        print(f"command round {i + 1} ({', '.join(this)}): wall {walls[-1]:.1f} s, re-materialisation "
              f"{inner[-1]:.1f} s", flush=True)
    return walls, inner


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", choices=("loop", "command", "both"), default="both")
    args = parser.parse_args()
    sets = args.set or ["fleet.utilisation=0.70,0.71,0.72,0.73,0.74"]
    rounds = _rounds(sets, args.repeat + 1)  # the loop's first what-if includes its start-up: one more
    if args.mode in ("loop", "both"):
        times = bench_loop(rounds)
        print(f"whatif --loop ({', '.join(sets)}): median {statistics.median(times):.1f} s per what-if, worst "
              f"{max(times):.1f} s over {len(times)} (target {TARGET_S:g} s)")
    if args.mode in ("command", "both"):
        walls, inner = bench_command(rounds)
        print(f"whatif --set ({', '.join(sets)}): median wall {statistics.median(walls):.1f} s, median "
              f"re-materialisation {statistics.median(inner):.1f} s over {len(walls)} processes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
