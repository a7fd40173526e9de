"""`tokens2chips workers [--count N]`: start the scaled profile's Celery workers on this machine (run it on
every machine that should load call-log days). Each worker is one process taking one day-partition at a time
from the Redis queue; Ctrl-C or SIGTERM stops them all."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys

from pipelines.settings import PROJECT_ROOT, Scaled, ensure_dagster_home, profile
from pipelines.usage import UsageError


def worker_command(name: str, loglevel: str = "INFO") -> list[str]:
    """One worker process: the solo pool (the task runs in the worker's own process, so killing the worker
    kills its load), the dagster queue, no gossip."""
    return [sys.executable, "-m", "celery", "-A", "pipelines.celery_app", "worker", "--pool", "solo",
            "--concurrency", "1", "--prefetch-multiplier", "1", "-Q", "dagster", "-n", f"{name}@{socket.gethostname()}",
            "--loglevel", loglevel, "--without-mingle", "--without-gossip"]


def start_workers(names: list[str], env: dict | None = None, loglevel: str = "INFO",
                  **popen) -> list[subprocess.Popen]:
    """One worker process per name (the Celery node name is name@host)."""
    env = {**os.environ, **(env or {})}
    return [subprocess.Popen(worker_command(name, loglevel), cwd=PROJECT_ROOT, env=env, **popen) for name in names]


def cmd_workers(args: argparse.Namespace) -> int:
    from pipelines.scaled import ensure_databases, service_problems

    if profile() != "scaled":
        print("error: workers serve the scaled profile: set T2C_PROFILE=scaled or pass --profile scaled",
              file=sys.stderr)
        return 2
    scaled = Scaled.from_env()
    problems = service_problems(scaled)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    ensure_databases(scaled)
    ensure_dagster_home()
    if args.count < 1:
        raise UsageError("--count must be at least 1")
    procs = start_workers([f"{args.name}{i + 1}" for i in range(args.count)])
    print(f"{args.count} worker(s) on {scaled.redis_url} (prefix {scaled.redis_prefix!r}), queue 'dagster', "
          f"pids {', '.join(str(p.pid) for p in procs)}; Ctrl-C stops them", flush=True)

    def stop(signum, _frame):
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    codes = [proc.wait() for proc in procs]
    return 0 if all(c in (0, -signal.SIGTERM) for c in codes) else 1


def add_parser(sub) -> None:
    workers = sub.add_parser("workers", help="scaled profile: start Celery workers that load call-log days")
    workers.add_argument("--count", type=int, default=2, help="worker processes on this machine")
    workers.add_argument("--name", default="t2c-worker", help="worker name prefix (numbered; @host appended)")
    workers.set_defaults(func=cmd_workers)
