"""Dagster instance repair for the CLI: runs killed inside a step keep their pool slot for ever; mark such
dead runs failed and free their slots, before a run and every few seconds while one is waiting or working."""

from __future__ import annotations

import os
import socket
from pathlib import Path



POOL_NAME = "duckdb"  # assets/ingest.POOL (not imported here: that would load Dagster for every command)

def process_alive(pid: str | None) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True

def reclaim_dead_runs(instance, warehouse: Path) -> None:
    """CLI runs still marked as running whose process is gone (killed, e.g. by SIGKILL or the OOM killer):
    those of this warehouse (we hold its run lock, so none of them is alive) and those of other warehouses
    whose process no longer exists on this host. Mark them failed and free their slots in pool `duckdb`,
    which is shared by the whole Dagster instance and which they would otherwise hold for ever."""
    import dagster as dg

    running = instance.get_runs(filters=dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED],
        tags={"launched_by": "tokens2chips run"}))
    host = socket.gethostname()
    stale = [r for r in running if r.tags.get("t2c/warehouse") == str(warehouse)
             or (r.tags.get("t2c/host", host) == host and not process_alive(r.tags.get("t2c/pid")))]
    for run in stale:
        instance.report_run_failed(run, message=f"the process of this run (pid {run.tags.get('t2c/pid', '?')}) "
                                   "died without finishing it; reclaimed by the next `tokens2chips run`")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        print(f"  reclaimed run {run.run_id}: its process died mid-run; marked failed, pool slot freed")
    free_slots_of_finished_runs(instance)

def free_slots_of_finished_runs(instance) -> list[str]:
    """Free the pool slots (and queued steps) still held by runs that have ended. A run killed inside a
    step leaves its claim behind; the harness once saw such a claim outlive the reclaim above, so this
    sweep also runs every few seconds while a CLI run is waiting or working (see SlotSweeper)."""
    import dagster as dg

    info = instance.event_log_storage.get_concurrency_info(POOL_NAME)
    holders = {slot.run_id for slot in info.claimed_slots} | {step.run_id for step in info.pending_steps}
    freed = []
    for run_id in holders:
        run = instance.get_run_by_id(run_id)
        if run is None or run.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
                                         dg.DagsterRunStatus.CANCELED):
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            freed.append(run_id)
    return freed

class SlotSweeper:
    """Background sweep of slots held by ended runs for the duration of a CLI run."""

    def __init__(self, instance, every_s: float = 5.0):
        import threading

        self.instance, self.every_s = instance, every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="t2c-slot-sweeper", daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                for run_id in free_slots_of_finished_runs(self.instance):
                    print(f"  freed the pool slot of ended run {run_id}", flush=True)
            except Exception:  # a sweep is best effort; the next one tries again
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
