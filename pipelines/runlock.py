"""One writer per warehouse: an advisory file lock held for the whole of a `tokens2chips run`.

The lock is an flock on `<warehouse>.run.lock`; the kernel releases it when the process dies, even
by SIGKILL, so a crashed run never leaves a stale lock behind. The file holds the owner's pid and
start time so the second run can say who it is waiting for.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path


class RunLockBusy(RuntimeError):
    pass


def lock_path(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".run.lock")


def _owner(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        return "another process"
    return text or "another process"


@contextmanager
def run_lock(warehouse: Path, wait_s: float = 0.0, on_wait=None):
    """Hold the warehouse's run lock; raise RunLockBusy if it is still held after `wait_s` seconds."""
    path = lock_path(warehouse)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    held = False
    try:
        deadline = time.monotonic() + wait_s
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RunLockBusy(
                        f"another tokens2chips run ({_owner(path)}) is writing {warehouse}; "
                        "wait for it to finish or pass --wait SECONDS to queue behind it"
                    ) from None
                if on_wait and not announced:
                    on_wait(_owner(path))
                    announced = True
                time.sleep(0.5)
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {started}\n".encode(), 0)
        held = True
        yield
    finally:
        if held:
            # released: the file no longer names a finished run's pid (it stays, empty: removing it could let
            # a waiter and a newcomer lock two different files)
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the flock
