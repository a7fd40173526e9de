"""The scaled profile, exercised on the real services: the Dagster instance in PostgreSQL, two Celery workers on
the Redis broker, the DuckLake warehouse with its catalog in PostgreSQL. Each test module run has its own
databases, data path and Redis key prefix (dropped afterwards). Without PostgreSQL or Redis on localhost the
tests skip, with one line naming the missing service."""

import datetime as dt
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from bench.make_call_logs import generate
from configuration.call_logs import load_call_log_config
from pipelines.scaled import service_problems
from pipelines.settings import Scaled
from tests.conftest import ASSUMPTIONS, DATA, ROOT

PROBLEMS = service_problems(Scaled.from_env())
pytestmark = pytest.mark.skipif(bool(PROBLEMS), reason="scaled profile: " + "; ".join(PROBLEMS))

CFG = load_call_log_config(ROOT / "config" / "call_logs.yaml")
START = dt.date(2026, 1, 5)
CALL_LOG_MARTS = ("call_volume_daily", "workload_mix", "call_log_unknown_models")
COMPARED = {"raw.call_log_daily": "*", "raw.call_log_rejects": "*",
            "meta.call_log_partitions": "day, fingerprint, files, rows_loaded, rows_rejected",
            **{f"marts.{m}": "*" for m in CALL_LOG_MARTS}}


class Workers:
    """Celery worker processes of the test deployment (tokens2chips workers' command line)."""

    def __init__(self, env: dict, logs: Path):
        self.env, self.logs, self.procs = env, logs, {}

    def start(self, name: str) -> None:
        from pipelines.workers_cli import start_workers

        log = open(self.logs / f"{name}.log", "ab")
        self.procs[name] = start_workers([name], env=self.env, loglevel="INFO", stdout=log,
                                         stderr=subprocess.STDOUT)[0]

    def wait_ready(self, timeout: float = 60.0) -> None:
        alive = sorted(n for n, p in self.procs.items() if p.poll() is None)
        if not in_child(self.env, "_wait_ready", alive, timeout):
            raise AssertionError("workers not ready: " + " | ".join(p.read_text()[-2000:] for p in self.logs.glob("*.log")))

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def in_child(env: dict, function: str, *args, background: bool = False):
    """Call a function of this module in a fresh Python process with `env` and return its JSON result (or, with
    `background`, the process, whose stdout carries it). Whatever talks to the Celery broker runs there: Celery
    and kombu register after-fork hooks that talk to Redis, and a later test that forks the pytest process
    would hang in them."""
    code = (f"import json, sys; from tests.test_scaled import {function} as f; "
            f"print(json.dumps(f(*json.loads(sys.argv[1]))))")
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(args, default=str)], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc if background else child_result(proc)


def child_result(proc: subprocess.Popen, timeout: float = 600):
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode:
        raise AssertionError(f"child failed ({proc.returncode}): {err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def _wait_ready(names: list[str], timeout: float) -> bool:
    from pipelines.scaled import live_workers

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if {w.split("@")[0] for w in live_workers(1.0)} >= set(names):
            return True
        time.sleep(0.5)
    return False


def _drop(scaled: Scaled) -> None:
    import psycopg2
    import redis

    con = psycopg2.connect(scaled.dsn("postgres"))
    con.autocommit = True
    with con.cursor() as cur:
        for name in (scaled.dagster_db, scaled.lake_db):
            cur.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (name,))
            cur.execute(f'drop database if exists "{name}"')
    con.close()
    client = redis.Redis.from_url(scaled.redis_url)
    for key in client.scan_iter(match=scaled.redis_prefix + "*"):
        client.delete(key)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A scaled deployment of its own: databases, data path, Redis prefix, Dagster home, two workers."""
    from pipelines.scaled import ensure_databases

    root = tmp_path_factory.mktemp("scaled")
    tag = uuid.uuid4().hex[:8]
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "scaled" / "dagster.yaml").read_text()
                                       .replace("var/scaled/dagster", str(root / "dg")))
    env = {"T2C_PROFILE": "scaled", "T2C_DAGSTER_DB": f"t2c_test_dg_{tag}", "T2C_LAKE_DB": f"t2c_test_lake_{tag}",
           "T2C_LAKE_DATA_PATH": str(root / "lake"), "T2C_REDIS_PREFIX": f"t2c-test-{tag}:",
           "T2C_CELERY_VISIBILITY_S": "5", "DAGSTER_HOME": str(home), "T2C_DATA_DIR": str(DATA),
           "T2C_WAREHOUSE": str(root / "var" / "warehouse.duckdb"), "T2C_REPORTS_DIR": str(root / "reports"),
           "T2C_ASSUMPTIONS": str(ASSUMPTIONS)}
    scaled_env = {**env, "T2C_DAGSTER_PG_URL": "postgresql+psycopg2://{}@{}:{}/{}".format(
        os.environ.get("T2C_PG_USER", "postgres"), os.environ.get("T2C_PG_HOST", "127.0.0.1"),
        os.environ.get("T2C_PG_PORT", "5432"), env["T2C_DAGSTER_DB"])}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in scaled_env.items():
            mp.setenv(key, value)
        scaled = Scaled.from_env()
        ensure_databases(scaled)
        workers = Workers(scaled_env, root)
        try:
            for name in ("w1", "w2"):
                workers.start(name)
            workers.wait_ready()
            yield {"root": root, "env": scaled_env, "scaled": scaled, "workers": workers}
        finally:
            workers.stop()
            _drop(scaled)


def _paths(root: Path | None, lake: bool):
    """The deployment's paths: the lake (scaled), or a DuckDB file under `root` (embedded)."""
    from pipelines.settings import Paths

    return Paths.from_env(warehouse=None if lake else str(root / "embedded.duckdb"))


def _resources(paths, call_logs: Path, as_of: str = "") -> dict:
    from assets.resources import ProjectSettings, Warehouse
    from pipelines.settings import settings_config, warehouse_config

    return {"warehouse": Warehouse(**warehouse_config(paths)),
            "settings": ProjectSettings(**settings_config(paths, as_of, str(call_logs)))}


def _run_on_workers(call_logs: str) -> dict:
    """The scaled profile's call-log load (what `tokens2chips run --call-logs` launches), on the workers (run in a
    child process: in_child)."""
    import warnings

    from assets.call_logs_parallel import call_logs_parallel
    from pipelines.settings import celery_executor_config, redis_io_config, run_config

    warnings.filterwarnings("ignore", message="Task name 'execute_plan' is already registered")
    config = run_config(_paths(None, lake=True), "", call_logs)
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(call_logs_parallel), instance=instance, raise_on_error=False,
            run_config={"resources": {**config["resources"], "io_manager": {"config": redis_io_config()}},
                        "execution": {"config": celery_executor_config()},
                        "ops": {"plan_days": {"config": {"days": []}}}})
        # one engine event per delivery of a step to a worker, naming the worker
        handed = [e.dagster_event for e in instance.all_logs(result.run_id)
                  if e.dagster_event and e.dagster_event.event_type_value == "ENGINE_EVENT"
                  and "Celery worker" in (e.dagster_event.engine_event_data.metadata or {})]
    return {"success": result.success, "run_id": result.run_id,
            "workers": sorted({e.engine_event_data.metadata["Celery worker"].value for e in handed}),
            "deliveries": [e.step_key for e in handed]}


def _call_log_marts(paths, call_logs: Path, as_of: str = "", only: str = "") -> None:
    """The marts over the call logs, and what they read (not the call-log load itself); `only`: that mart alone."""
    from pipelines.definitions import all_assets

    marts = [dg.AssetKey(["marts", m]) for m in CALL_LOG_MARTS]
    selection = dg.AssetSelection.assets(dg.AssetKey(["marts", only])) if only else \
        dg.AssetSelection.assets(*marts).upstream() - dg.AssetSelection.assets(dg.AssetKey(["raw", "call_log_daily"]))
    with dg.instance_for_test() as instance:
        result = dg.materialize(all_assets, selection=selection, resources=_resources(paths, call_logs, as_of),
                                instance=instance, raise_on_error=False)
    assert result.success


def _tables(target, marts: bool = True) -> dict:
    from warehouse.io import connect

    con = connect(target, read_only=True)
    try:
        return {t: con.execute(f"select {cols} from {t} order by all").fetchall() for t, cols in COMPARED.items()
                if marts or not t.startswith("marts.")}
    finally:
        con.close()


def _embedded(root: Path, call_logs: Path, name: str, marts: bool = True) -> dict:
    """The embedded profile on the same input: the day-partitions loaded into a DuckDB file by the embedded
    asset's library call, then the same marts."""
    from call_logs.loading import day_files, load_days

    paths = _paths(root / name, lake=False)
    paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(paths.warehouse))
    try:
        load_days(con, day_files(call_logs, CFG, con), CFG)
    finally:
        con.close()
    if marts:
        _call_log_marts(paths, call_logs)
    return _tables(paths.warehouse, marts)


def test_two_workers_load_a_month_and_the_marts_equal_the_embedded_profile(deployment):
    root = deployment["root"]
    logs = root / "month"
    generate(60_000, 30, logs, "csv", START, bad_fraction=0.002, seed=21, threads=1)
    paths = _paths(root, lake=True)
    run = in_child(deployment["env"], "_run_on_workers", str(logs))
    assert run["success"]
    assert len(run["workers"]) == 2, f"both workers take day-partitions: {run['workers']}"
    assert sum(k.startswith("load_day[") for k in run["deliveries"]) == 30
    _call_log_marts(paths, logs)
    lake, embedded = _tables(paths.target), _embedded(root, logs, "embedded_month")
    assert embedded["raw.call_log_daily"], "the month loaded rows"
    assert embedded["raw.call_log_rejects"], "the month has rejected rows to compare"
    for table in COMPARED:
        assert lake[table] == embedded[table], table
    # every day is a partition of raw/call_log_daily in the PostgreSQL-backed instance
    with dg.DagsterInstance.get() as instance:
        assert instance.__class__.__name__ == "DagsterInstance" and "postgres" in type(instance.run_storage).__module__
        materialized = instance.get_materialized_partitions(dg.AssetKey(["raw", "call_log_daily"]))
    assert {(START + dt.timedelta(d)).isoformat() for d in range(30)} <= set(materialized)


def test_a_point_in_time_run_reads_the_call_logs_as_the_lake_held_them_then(deployment):
    """`run --as-of DATE` on the lake: the call logs of the snapshot current at the end of that date (every
    snapshot here is from today: as of yesterday nothing was loaded yet)."""
    from warehouse.io import connect

    root = deployment["root"]
    paths = _paths(root, lake=True)
    today = dt.datetime.now(dt.timezone.utc).date()
    counts = {}
    for as_of in (today - dt.timedelta(days=1), today):
        _call_log_marts(paths, root / "month", as_of.isoformat(), only="call_volume_daily")
        con = connect(paths.target, read_only=True)
        try:
            counts[as_of] = con.execute("select count(*) from marts.call_volume_daily").fetchone()[0]
            loaded = con.execute("select count(*) from raw.call_log_daily").fetchone()[0]
        finally:
            con.close()
    assert counts[today - dt.timedelta(days=1)] == 0
    assert counts[today] == loaded > 0


def _day_rows(target, day: dt.date) -> int:
    from warehouse.io import connect

    con = connect(target, read_only=True)
    try:
        return con.execute("select coalesce(sum(requests), 0) from raw.call_log_daily where day = ?", [day]).fetchone()[0]
    finally:
        con.close()


def test_a_worker_killed_mid_partition_leaves_no_partial_day_and_the_run_completes(deployment):
    root, workers = deployment["root"], deployment["workers"]
    logs = root / "big"
    days = [dt.date(2026, 3, 2) + dt.timedelta(d) for d in range(3)]
    generate(900_000, 3, logs, "csv", days[0], bad_fraction=0.0005, seed=5, threads=2)
    paths = _paths(root, lake=True)
    with dg.DagsterInstance.get() as instance:
        earlier = {r.run_id for r in instance.get_runs(dg.RunsFilter(job_name="call_logs_parallel"))}
    runner = in_child(deployment["env"], "_run_on_workers", str(logs), background=True)
    # kill w1 as soon as it has started loading a day
    victim_day = None
    deadline = time.monotonic() + 120
    with dg.DagsterInstance.get() as instance:
        while victim_day is None and time.monotonic() < deadline:
            runs = [r for r in instance.get_runs(dg.RunsFilter(job_name="call_logs_parallel"))
                    if r.run_id not in earlier]
            for event in (instance.all_logs(runs[0].run_id) if runs else []):
                data = event.dagster_event.engine_event_data if event.dagster_event and \
                    event.dagster_event.event_type_value == "ENGINE_EVENT" else None
                worker = data.metadata.get("Celery worker") if data and data.metadata else None
                if worker and worker.value.startswith("w1@") and event.dagster_event.step_key.startswith("load_day["):
                    victim_day = dt.date.fromisoformat(event.dagster_event.step_key[9:19].replace("_", "-"))
                    break
            time.sleep(0.05)
    assert victim_day is not None, "w1 never started a day"
    time.sleep(0.5)
    workers.kill("w1")
    # the killed load committed nothing: the day is absent (never loaded before), not partly there
    seen = _day_rows(paths.target, victim_day)
    run = child_result(runner, timeout=300)
    workers.start("w1")  # back to two for the other tests
    assert run["success"], "the run completes: the killed worker's day is handed to the other worker"
    assert run["deliveries"].count(f"load_day[{victim_day.isoformat().replace('-', '_')}]") >= 2, \
        "the killed day was delivered again"
    lake, embedded = _tables(paths.target, marts=False), _embedded(root, logs, "embedded_big", marts=False)
    total = sum(r[3] for r in embedded["raw.call_log_daily"] if r[0] == victim_day)
    assert seen in (0, total), f"a partial day was visible: {seen} of {total} requests"
    got = [r for r in lake["raw.call_log_daily"] if r[0] in days]
    assert got == [r for r in embedded["raw.call_log_daily"] if r[0] in days], "no row lost or doubled"
    assert [r for r in lake["meta.call_log_partitions"] if r[0] in days] == \
        [r for r in embedded["meta.call_log_partitions"] if r[0] in days]
    workers.wait_ready()


def _load_same_day(env: dict, day: str, logs: str, queue) -> None:
    os.environ.update(env)
    from assets.resources import Warehouse
    from call_logs.loading import discover
    from call_logs.parallel import load_day_exclusive
    from pipelines.settings import Paths, warehouse_config

    warehouse = Warehouse(**warehouse_config(Paths.from_env()))
    date = dt.date.fromisoformat(day)
    try:
        queue.put(load_day_exclusive(warehouse.get_connection, warehouse.lake_catalog, date,
                                     discover(Path(logs)).by_day[date], False, CFG)["rows_loaded"])
    except Exception as exc:  # reported to the test
        queue.put(repr(exc))


def test_two_workers_committing_the_same_day_concurrently_end_with_one_copy(deployment):
    root = deployment["root"]
    logs = root / "same_day"
    day = dt.date(2026, 5, 4)
    generate(400_000, 1, logs, "csv", day, bad_fraction=0.001, seed=9, threads=1)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_load_same_day, args=(deployment["env"], day.isoformat(), str(logs), queue))
             for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=180)
    results = [queue.get(timeout=5) for _ in procs]
    assert all(isinstance(r, int) for r in results), results
    paths = _paths(root, lake=True)
    lake, embedded = _tables(paths.target, marts=False), _embedded(root, logs, "embedded_same_day", marts=False)
    assert [r for r in lake["raw.call_log_daily"] if r[0] == day] == \
        [r for r in embedded["raw.call_log_daily"] if r[0] == day]
    assert [r for r in lake["raw.call_log_rejects"] if r[0] == day] == \
        [r for r in embedded["raw.call_log_rejects"] if r[0] == day]
    assert sum(1 for r in lake["meta.call_log_partitions"] if r[0] == day) == 1


def test_query_reads_the_lake_and_an_earlier_snapshot(deployment):
    from tests.conftest import cli
    from warehouse.io import connect
    from warehouse.lake import snapshots

    env, lake = deployment["env"], _paths(deployment["root"], lake=True).target
    sql = "select count(*) as n from meta.call_log_partitions"
    now = int(cli("query", sql, "--format", "csv", env=env).stdout.split()[-1])

    def count_at(version: int) -> int:
        con = connect(lake.at(version), read_only=True)
        try:
            return con.execute(sql).fetchone()[0]
        except duckdb.CatalogException:  # before the table existed
            return 0
        finally:
            con.close()

    con = connect(lake, read_only=True)
    try:
        versions = [v for v, _, _ in snapshots(con)]
    finally:
        con.close()
    low, high = 0, len(versions) - 1  # the first snapshot with a loaded day (the count only grows here)
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if count_at(versions[mid]) > 0 else (mid + 1, high)
    early = int(cli("--snapshot", str(versions[low]), "query", sql, "--format", "csv", env=env).stdout.split()[-1])
    assert 0 < early < now, (early, now)
    refused = cli("query", "insert into meta.call_log_partitions select * from meta.call_log_partitions",
                  env=env, check=False)
    assert refused.returncode != 0 and "read-only" in refused.stderr
    # the lake's own Parquet files are readable under the locked-down settings; no other file is
    requests = cli("query", "select sum(requests) from raw.call_log_daily", "--format", "csv", env=env).stdout
    assert int(requests.split()[-1]) > 50_000
    outside = cli("query", f"select * from read_csv('{ROOT / 'README.md'}')", env=env, check=False)
    assert outside.returncode != 0 and "disabled by configuration" in outside.stdout + outside.stderr


def test_scaled_commands_say_what_is_missing(tmp_path):
    from tests.conftest import cli

    proc = cli("workers", env={"T2C_PROFILE": "embedded"}, check=False)
    assert proc.returncode == 2 and "scaled profile" in proc.stderr
    proc = cli("run", env={"T2C_PROFILE": "scaled", "T2C_PG_PORT": "1", "T2C_WAREHOUSE": str(tmp_path / "w.duckdb"),
                           "DAGSTER_HOME": str(tmp_path)}, check=False)
    assert proc.returncode == 2 and "PostgreSQL at 127.0.0.1:1 is not reachable" in proc.stderr
    proc = cli("query", "select 1", env={"T2C_PROFILE": "bogus"}, check=False)
    assert proc.returncode != 0 and "T2C_PROFILE" in proc.stderr
