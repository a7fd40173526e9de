"""Reliability: one writer, readers on the published copy, crash safety of table replacement, resource
faults with one clear error, read-only SQL. (Whole-run SIGKILL trials: tests/fault/crash_harness.py.)"""

from __future__ import annotations

import hashlib
import os
import random
import resource
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from assets.resources import Warehouse
from warehouse.io import WarehouseLockedError, connect, publish, published_copy, replace_tables
from pipelines.cli import main
from pipelines.query import QueryRefused, open_read_only, run_query
from pipelines.runlock import RunLockBusy, lock_path, run_lock
from tests.conftest import ASSUMPTIONS, ROOT

PY = sys.executable


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _small_warehouse(path: Path) -> Path:
    con = duckdb.connect(str(path))
    con.execute("create schema marts; create table marts.t as select range as i, range * 2 as j from range(100)")
    con.close()
    return path


def _spawn(code: str, *, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([PY, "-c", textwrap.dedent(code)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, **kw)


def _wait_for(proc: subprocess.Popen, marker: str) -> None:
    line = proc.stdout.readline()
    assert marker in line, (line, proc.stderr.read() if proc.poll() is not None else "")


# ---- read-only SQL -------------------------------------------------------------------------------

REFUSED = [
    "insert into marts.t values (1, 2)",
    "update marts.t set j = 0",
    "delete from marts.t",
    "create table marts.u as select 1",
    "create temp table u as select 1",
    "drop table marts.t",
    "alter table marts.t add column k int",
    "copy marts.t to '{tmp}/out.csv'",
    "copy (select 1) to '{tmp}/out.parquet' (format parquet)",
    "export database '{tmp}/dump'",
    "attach '{tmp}/other.duckdb' as other",
    "detach database if exists other",
    "install httpfs",
    "load httpfs",
    "set memory_limit = '10GB'",
    "pragma enable_profiling",
    "checkpoint",
    "vacuum",
    "begin transaction",
    "create macro m() as 1",
    "select 1; drop table marts.t",
    "select * from read_csv('/etc/passwd')",
    "select * from '/etc/hostname'",
    "select * from glob('/*')",
    "select * from read_blob('{tmp}/secret.txt')",
    "select * from read_parquet('{tmp}/*.parquet')",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_query_refuses_writes_and_outside_access(tmp_path, sql):
    wh = _small_warehouse(tmp_path / "wh.duckdb")
    (tmp_path / "secret.txt").write_text("not for the query tool")
    before = _digest(wh)
    con = open_read_only(wh)
    try:
        # refused before running, or (a bare file path as a table) not resolvable without file access
        with pytest.raises(QueryRefused if "hostname" not in sql else duckdb.CatalogException):
            run_query(con, sql.format(tmp=tmp_path))
    finally:
        con.close()
    assert _digest(wh) == before
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "dump").exists()


def test_query_cli_answers_selects_and_refuses_with_a_message(tmp_path, capsys):
    wh = _small_warehouse(tmp_path / "wh.duckdb")
    assert main(["query", "--warehouse", str(wh), "--format", "csv",
                 "with x as (select sum(j) as s from marts.t) select s from x"]) == 0
    assert capsys.readouterr().out.splitlines() == ["s", str(sum(range(100)) * 2)]
    assert main(["query", "--warehouse", str(wh), "describe marts.t"]) == 0
    capsys.readouterr()
    assert main(["query", "--warehouse", str(wh), "delete from marts.t"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("refused: DELETE statements are not allowed") and "Traceback" not in err
    assert main(["query", "--warehouse", str(wh), "select * from read_csv('/etc/passwd')"]) == 2
    assert "outside the warehouse" in capsys.readouterr().err


def test_csv_export_neutralises_spreadsheet_formulas(tmp_path, capsys):
    wh = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(wh))
    con.execute("create table t as select * from (values ('=cmd|'' /C calc''!A0', -3), ('plain', 4)) v(name, n)")
    con.close()
    assert main(["query", "--warehouse", str(wh), "--format", "csv", "select * from t"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "'=cmd|' /C calc'!A0,-3" and out[2] == "plain,4"
    assert main(["query", "--warehouse", str(wh), "--format", "csv", "--raw", "select * from t"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "=cmd|' /C calc'!A0,-3"


# ---- one writer, readers elsewhere ------------------------------------------------------------------

def _hold_run_lock(wh: Path) -> subprocess.Popen:
    """Another process holding the warehouse's run lock (returns once it holds it)."""
    holder = _spawn(f"""
        from pathlib import Path
        from pipelines.runlock import run_lock
        with run_lock(Path({str(wh)!r})):
            print("locked", flush=True)
            import time; time.sleep(60)
    """)
    _wait_for(holder, "locked")
    return holder


def test_second_run_lock_fails_fast_naming_the_holder_and_a_killed_holder_frees_it(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    holder = _hold_run_lock(wh)
    try:
        started = time.monotonic()
        with pytest.raises(RunLockBusy, match=f"pid {holder.pid}"):
            with run_lock(wh, wait_s=0.5):
                pass
        assert time.monotonic() - started < 5
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with run_lock(wh):  # the kernel released the flock of the killed process: no stale lock
        assert f"pid {os.getpid()}" in lock_path(wh).read_text()
    # released normally, the file no longer names a finished run's pid (issue 29)
    assert lock_path(wh).read_text() == ""


def test_cli_run_refuses_while_another_run_holds_the_warehouse(tmp_path, capsys, monkeypatch):
    wh = tmp_path / "warehouse.duckdb"
    holder = _hold_run_lock(wh)
    try:
        code = main(["run", "--warehouse", str(wh), "--data-dir", str(ROOT / "data")])
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert code == 3
    err = capsys.readouterr().err
    assert "another tokens2chips run" in err and "--wait" in err
    assert not wh.exists()


def test_a_writer_blocks_nobody_reading_the_published_copy_and_lock_errors_name_the_holder(tmp_path):
    wh = _small_warehouse(tmp_path / "warehouse.duckdb")
    published = publish(wh)
    assert published == published_copy(wh) and _digest(published) == _digest(wh)
    writer = _spawn(f"""
        import duckdb
        con = duckdb.connect({str(wh)!r})
        con.execute("create table marts.more as select 1")
        print("open", flush=True)
        import time; time.sleep(60)
    """)
    try:
        _wait_for(writer, "open")
        reader = open_read_only(published)
        assert run_query(reader, "select count(*) from marts.t").item() == 100
        reader.close()
        with pytest.raises(WarehouseLockedError, match=f"process {writer.pid}.*published copy"):
            connect(wh, wait_s=0.5)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()


def test_connections_close_even_when_the_block_raises(tmp_path):
    wh = _small_warehouse(tmp_path / "warehouse.duckdb")
    resource_ = Warehouse(database=str(wh))
    with pytest.raises(ZeroDivisionError):
        with resource_.get_connection() as con:
            con.execute("select 1")
            1 / 0
    # another process can take the write lock at once: ours was released in `finally`
    probe = subprocess.run([PY, "-c", f"import duckdb; duckdb.connect({str(wh)!r}).execute('select 1')"],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr


def test_a_published_snapshot_being_read_survives_a_new_publish(tmp_path):
    wh = _small_warehouse(tmp_path / "warehouse.duckdb")
    published = publish(wh)
    reader = duckdb.connect(str(published), read_only=True)
    con = duckdb.connect(str(wh))
    con.execute("insert into marts.t select 1000, 0")
    con.close()
    publish(wh)  # renamed over the file the reader has open
    assert reader.execute("select count(*) from marts.t").fetchone()[0] == 100  # old version, intact
    reader.close()
    fresh = duckdb.connect(str(published), read_only=True)
    assert fresh.execute("select count(*) from marts.t").fetchone()[0] == 101
    fresh.close()


# ---- crash safety of a table replacement ------------------------------------------------------------

REPLACER = """
import sys, duckdb
from warehouse.io import replace_tables
con = duckdb.connect(sys.argv[1])
print("start", flush=True)
i = 0
while True:
    v = i % 2
    replace_tables(con, {"marts.a": f"select range as k, {v} as v from range(200000 + {v})",
                         "marts.b": f"select range as k, {v} as v from range(1000 + {v})"})
    i += 1
"""


def test_sigkill_during_table_replacement_leaves_each_table_old_or_new_and_the_pair_consistent(tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(wh))
    replace_tables(con, {"marts.a": "select range as k, 0 as v from range(200000)",
                         "marts.b": "select range as k, 0 as v from range(1000)"})
    con.close()
    rng = random.Random(7)
    for _ in range(6):
        proc = subprocess.Popen([PY, "-c", REPLACER, str(wh)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "start"
        time.sleep(rng.uniform(0.05, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        con = duckdb.connect(str(wh))  # replays or discards the WAL
        a = con.execute("select count(*), min(v), max(v) from marts.a").fetchone()
        b = con.execute("select count(*), min(v), max(v) from marts.b").fetchone()
        leftovers = con.execute("select count(*) from duckdb_tables() where table_name like '\\_\\_new\\_%' "
                                "escape '\\'").fetchone()[0]
        con.close()
        assert a[1] == a[2] == b[1] == b[2], (a, b)  # each table one version, both the same version
        assert a[0] == 200000 + a[1] and b[0] == 1000 + b[1]
        assert leftovers in (0, 1, 2)  # a staged copy may remain; it is dropped by the next replace


def test_disk_full_during_a_load_keeps_the_previous_table(tmp_path):
    """RLIMIT_FSIZE stands in for a full disk (EFBIG on write): the load fails with DuckDB's IO error and
    the previous version of the table is intact."""
    wh = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(wh))
    replace_tables(con, {"marts.a": "select range as k from range(1000)"})
    con.execute("checkpoint")
    con.close()
    limit = wh.stat().st_size + 64 * 1024

    def cap():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [PY, "-c", textwrap.dedent(f"""
            import duckdb, sys
            from warehouse.io import replace_tables
            con = duckdb.connect({str(wh)!r})
            try:
                replace_tables(con, {{"marts.a": "select range as k, md5(range::varchar) as h from range(3000000)"}})
                con.execute("checkpoint")
            except duckdb.Error as exc:
                print("error:", str(exc).splitlines()[0], file=sys.stderr)
                sys.exit(1)
        """)], cwd=ROOT, capture_output=True, text=True, preexec_fn=cap, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "error:" in proc.stderr and ("File too large" in proc.stderr or "write" in proc.stderr.lower())
    con = duckdb.connect(str(wh))
    assert con.execute("select count(*), max(k) from marts.a").fetchone() == (1000, 999)
    con.close()


# ---- resource faults through the CLI ----------------------------------------------------------------

def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "pipelines", *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def _replaced(old: str, new: str) -> str:
    text = ASSUMPTIONS.read_text()
    assert old in text, old
    return text.replace(old, new, 1)


def test_malformed_assumptions_give_one_clear_error_and_touch_nothing(tmp_path, dagster_env):
    wh = Path(dagster_env["T2C_WAREHOUSE"])
    wh.parent.mkdir(parents=True)
    _small_warehouse(wh)
    before = _digest(wh)
    cases = {
        "tabs.yaml": "hardware:\n\tmfu: 1\n",
        "not_a_mapping.yaml": "- just\n- a list\n",
        "nan.yaml": _replaced("  pue:\n    value: 1.3", "  pue:\n    value: .nan"),
        "text.yaml": _replaced("  pue:\n    value: 1.3", "  pue:\n    value: one point three"),
        "binary.yaml": None,
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_bytes(b"\xff\xfe\x00bad" if text is None else text.encode())
        proc = _cli("run", "--assumptions", str(path), env=dagster_env)
        assert proc.returncode == 2, (name, proc.stdout, proc.stderr)
        assert proc.stderr.startswith(f"error: {path}") and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 3, proc.stderr
    assert _digest(wh) == before


@contextmanager
def _unwritable(directory: Path):
    """A directory nobody can write: a read-only tmpfs for root (who ignores permission bits), else 0555."""
    directory.mkdir(parents=True)
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(directory)], check=True)
        try:
            yield directory
        finally:
            subprocess.run(["umount", str(directory)], check=True)
    else:
        directory.chmod(0o555)
        try:
            yield directory
        finally:
            directory.chmod(0o755)


def test_unwritable_warehouse_directory_is_one_clear_error(tmp_path, dagster_env):
    with _unwritable(tmp_path / "ro") as directory:
        proc = _cli("run", "--warehouse", str(directory / "warehouse.duckdb"), env=dagster_env)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: the warehouse directory {directory} is not writable")
    assert "Traceback" not in proc.stderr


def test_a_step_that_meets_a_held_lock_is_retried_by_dagster_and_then_succeeds(tmp_path):
    import dagster as dg

    wh = _small_warehouse(tmp_path / "warehouse.duckdb")
    attempted = tmp_path / "attempted"

    @dg.asset
    def count_rows(warehouse: Warehouse) -> int:
        attempted.touch()
        with warehouse.get_connection() as con:
            return con.execute("select count(*) from marts.t").fetchone()[0]

    # the holder keeps the lock until the step has tried (and waited 0.5 s) at least once
    holder = _spawn(f"""
        import duckdb, time
        from pathlib import Path
        con = duckdb.connect({str(wh)!r})
        print("open", flush=True)
        while not Path({str(attempted)!r}).exists():
            time.sleep(0.05)
        time.sleep(1.5)
        con.close()
        time.sleep(60)
    """)
    try:
        _wait_for(holder, "open")
        result = dg.materialize([count_rows], resources={
            "warehouse": Warehouse(database=str(wh), lock_wait_s=0.5, lock_retries=30, retry_wait_s=0.5)})
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert result.success and result.output_for_node("count_rows") == 100
    retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert retries, "the held lock should have caused at least one step retry"
