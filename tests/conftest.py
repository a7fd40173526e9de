import os
import shutil
import subprocess
import sys
from pathlib import Path

# `make test` runs two pytest workers on this 2-core machine: one BLAS/OpenMP thread per process (and per
# pipeline subprocess, which inherits the environment), or the workers' threads oversubscribe the cores
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import duckdb  # noqa: E402
import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from configuration.assumptions import load_configuration  # noqa: E402
from warehouse.io import read_sql, replace_table, replace_table_from_frame  # noqa: E402

threadpool_limits(1)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
ASSUMPTIONS = ROOT / "config" / "assumptions.yaml"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A private copy of the embedded dataset that a test may edit."""
    target = tmp_path / "data"
    shutil.copytree(DATA, target)
    return target


@pytest.fixture
def con(tmp_path: Path):
    connection = duckdb.connect(str(tmp_path / "test.duckdb"))
    yield connection
    connection.close()


def load_assumptions_table(con, path: Path = ASSUMPTIONS) -> None:
    replace_table_from_frame(con, "meta.assumptions", load_configuration(path).rows())


FEED_STAGING = ("staging.epoch_chip_sales", "staging.openrouter_daily")


def empty_feeds(con, sql: str) -> None:
    """Empty raw feed tables (no saved payloads) and the staging tables built on them, where missing: the
    feeds' rows only add to or replace curated rows, so a test of the curated path runs without them."""
    import polars as pl

    from feeds.catalog import SOURCES
    from feeds.formats import SCHEMAS
    from warehouse.feeds import VINTAGE_SCHEMA, table
    from warehouse.io import referenced_tables, replace_table_from_frame

    existing = {f"{a}.{b}" for a, b in con.execute("select schema_name, table_name from duckdb_tables()").fetchall()}
    for source in SOURCES:
        if table(source) not in existing:
            replace_table_from_frame(con, table(source), pl.DataFrame(schema={**SCHEMAS[source], **VINTAGE_SCHEMA}))
    for name in FEED_STAGING:
        if name not in existing and name in referenced_tables(sql):
            replace_table(con, name, read_sql(name))


def build(con, *tables: str) -> None:
    """Run the real SQL models, in the order given, against `con` (with empty feeds where a model reads one
    and the test made none)."""
    for table in tables:
        sql = read_sql(table)
        if "raw.feed_" in sql or any(name in sql for name in FEED_STAGING):
            empty_feeds(con, sql)
        replace_table(con, table, sql)


@pytest.fixture
def dagster_env(tmp_path: Path, monkeypatch, data_dir: Path) -> dict:
    """Environment for an end-to-end run: temp warehouse, reports and Dagster instance, reading `data_dir`."""
    env = pipeline_root(tmp_path, data=data_dir)["env"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


# ---------------------------------------------------------------- end-to-end runs (tests/test_pipeline.py,
# tests/test_vintage_run.py): each module builds one pipeline through the CLI and its tests share it

def cli(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m pipelines <args>` in a subprocess with `env` added to the environment."""
    proc = subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def marts_of(path: Path) -> dict:
    """Every marts table of the warehouse at `path`, rows in a stable order."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [t for (t,) in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'marts' order by 1").fetchall()]
        return {t: con.execute(f"select * from marts.{t} order by all").fetchall() for t in tables}
    finally:
        con.close()


def pipeline_root(root: Path, data: Path | None = None) -> dict:
    """A Dagster instance and var/ under `root`, the data (`data`, else a private copy of the embedded data
    under `root`), and the environment that points at them."""
    if data is None:
        data = root / "data"
        shutil.copytree(DATA, data)
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text().replace("var/dagster", str(root / "dg")))
    env = {"DAGSTER_HOME": str(home), "T2C_DATA_DIR": str(data),
           "T2C_WAREHOUSE": str(root / "var" / "warehouse.duckdb"), "T2C_REPORTS_DIR": str(root / "var" / "reports"),
           "T2C_ASSUMPTIONS": str(ASSUMPTIONS)}
    return {"root": root, "data": data, "env": env, "warehouse": root / "var" / "warehouse.duckdb",
            "reports": root / "var" / "reports"}


def private_copy(pipeline: dict, tmp_path: Path) -> dict:
    """A copy of a module's pipeline (data, warehouse, reports, Dagster instance) that a test may change
    without touching what the other tests read."""
    root = tmp_path / "copy"
    shutil.copytree(pipeline["root"], root, ignore=shutil.ignore_patterns("logs"))
    old, new = str(pipeline["root"]), str(root)
    config = root / "dagster_home" / "dagster.yaml"
    config.write_text(config.read_text().replace(old, new))
    # call logs stay where they were (read-only): their recorded fingerprints include the paths
    env = {k: (v if k == "T2C_CALL_LOGS" else v.replace(old, new)) for k, v in pipeline["env"].items()}
    return {**pipeline, "root": root, "original_root": pipeline["root"], "env": env, "data": root / "data",
            "warehouse": root / "var" / "warehouse.duckdb", "reports": root / "var" / "reports"}


def same_marts(copy: dict) -> bool:
    """The copy's marts equal the original's (file paths inside them differ only by the copy's root)."""
    return repr(marts_of(copy["warehouse"])).replace(str(copy["root"]), str(copy["original_root"])) \
        == repr(copy["marts"])


def resources_for(pipeline: dict, as_of: str) -> dict:
    """The warehouse and settings resources of `pipeline`'s runs, for dg.materialize."""
    from assets.resources import ProjectSettings, Warehouse
    from pipelines.settings import Paths, settings_config

    env = pipeline["env"]
    paths = Paths.from_env(data_dir=env["T2C_DATA_DIR"], warehouse=env["T2C_WAREHOUSE"],
                           reports_dir=env["T2C_REPORTS_DIR"], assumptions=env["T2C_ASSUMPTIONS"])
    return {"warehouse": Warehouse(database=str(paths.warehouse)),
            "settings": ProjectSettings(**settings_config(paths, as_of, env.get("T2C_CALL_LOGS", "")))}


# Modules that build a pipeline run first: with `make test`'s two workers (--dist loadfile
# --no-loadscope-reorder) each starts on one of them, and the short modules fill in around them.
LONG_MODULES = ("test_pipeline.py", "test_scaled.py", "test_vintage_run.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name not in LONG_MODULES)


def typed_assumptions(values: dict[str, float | tuple[float, float, float]]):
    """config/assumptions.yaml's typed object (configuration.schema.Assumptions) with the entries of `values`
    (by dotted name) set: a number fixes the entry (no spread), a (low, value, high) triple gives its range."""
    from configuration.assumptions import load_configuration

    spans = {name: v if isinstance(v, tuple) else (v, v, v) for name, v in values.items()}
    return load_configuration(ASSUMPTIONS).model.with_values(spans)


def typed_scenarios(raw: dict) -> dict:
    """A `scenarios` mapping as the schema types it (configuration.schema.Scenario), as the hardware library
    takes it."""
    from configuration.schema import Scenario

    return {name: Scenario.model_validate(spec) for name, spec in raw.items()}
