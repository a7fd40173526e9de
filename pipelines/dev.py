"""`make dev`: `dagster dev` that stops on SIGTERM and SIGHUP as it does on Ctrl-C.

dagster dev shuts its webserver, daemon and code servers down on SIGINT but not on SIGTERM, and a job a shell
starts in the background inherits SIGINT ignored, so `make dev &` followed by `kill` (or a supervisor's stop)
left the UI running. This launcher runs it as a child and turns
SIGTERM/SIGHUP into one SIGINT, then waits (and kills it if it has not stopped after a grace period)."""

from __future__ import annotations

import signal
import subprocess
import sys

from pipelines.settings import ensure_dagster_home

GRACE_S = 30.0


def supervise(command: list[str], grace_s: float = GRACE_S) -> int:
    """Run `command`; SIGTERM/SIGHUP to this process become SIGINT to it. Returns its exit code."""
    # a shell starts a background job with SIGINT ignored, and Python then installs no KeyboardInterrupt
    # handler: the child gets the default back, so the SIGINT below (or Ctrl-C) stops it
    child = subprocess.Popen(command, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    stopping = []

    def stop(signum, _frame):
        if not stopping:
            stopping.append(signum)
            child.send_signal(signal.SIGINT)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    # Ctrl-C reaches the child directly (same process group): forwarding it too would count as a second one
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            code = child.wait(timeout=grace_s if stopping else None)
            break
        except subprocess.TimeoutExpired:
            child.kill()
    return 128 + stopping[0] if stopping and code < 0 else code


def stop_with_parent() -> None:
    """Linux: get SIGTERM when the parent dies. `make dev` stays the parent and does not pass SIGTERM on to its
    recipe, so `kill <make's pid>` reaches this launcher this way."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def main() -> int:
    ensure_dagster_home()
    stop_with_parent()
    return supervise([sys.executable, "-m", "dagster", "dev", "-m", "pipelines.definitions", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
