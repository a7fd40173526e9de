import shutil
from pathlib import Path

import duckdb
import pytest

from configuration.assumptions import flatten_assumptions, load_assumptions
from warehouse.io import read_sql, replace_table, replace_table_from_frame

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
    replace_table_from_frame(con, "meta.assumptions", flatten_assumptions(load_assumptions(path)))


def build(con, *tables: str) -> None:
    """Run the real SQL models, in the order given, against `con`."""
    for table in tables:
        replace_table(con, table, read_sql(table))


@pytest.fixture
def dagster_env(tmp_path: Path, monkeypatch, data_dir: Path) -> dict:
    """Environment for an end-to-end run: temp warehouse, reports and Dagster instance."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    storage = tmp_path / "dagster_storage"
    (home / "dagster.yaml").write_text(
        (ROOT / "dagster.yaml").read_text().replace("var/dagster", str(storage))
    )
    env = {
        "DAGSTER_HOME": str(home),
        "T2C_DATA_DIR": str(data_dir),
        "T2C_WAREHOUSE": str(tmp_path / "var" / "warehouse.duckdb"),
        "T2C_REPORTS_DIR": str(tmp_path / "var" / "reports"),
        "T2C_ASSUMPTIONS": str(ASSUMPTIONS),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
