"""`tokens2chips whatif --set KEY=VALUE [...]`: change assumptions and see the effect, without touching the
warehouse or the report of record.

The published warehouse is copied to var/whatif/warehouse.duckdb; the assumptions file, with the values set,
to var/whatif/assumptions.yaml (validated like any run's); then only the assets downstream of
meta.assumptions are materialised (Dagster, in process), reusing the forecasts (and the serving calibration
unless a serving.* or hardware.* value changed), and the report is rebuilt under var/whatif/reports/, with a
banner naming the assumptions that differ from the file (meta.whatif)."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from pipelines.settings import PROJECT_ROOT, Paths, settings_config
from pipelines.usage import UsageError

WHATIF_DIR = PROJECT_ROOT / "var" / "whatif"
CALIBRATION_PREFIXES = ("serving.", "hardware.")


def parse_sets(pairs: list[str], leaves: dict[str, dict]) -> dict[str, float]:
    """KEY=VALUE pairs -> {assumption name: value}, each a numeric leaf of the assumptions file and inside
    its stated range."""
    import difflib

    out = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep:
            raise UsageError(f"--set {pair!r}: expected KEY=VALUE, e.g. fleet.utilisation=0.7")
        if name not in leaves:
            near = difflib.get_close_matches(name, list(leaves), 3, 0.6)
            raise UsageError(f"--set {name}: not an assumption of the file"
                             + (f" (closest: {', '.join(near)})" if near else ""))
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"--set {name}={text!r}: not a number") from None
        leaf = leaves[name]
        low, high = leaf.get("low"), leaf.get("high")
        if (low is not None and value < low) or (high is not None and value > high):
            raise UsageError(f"--set {name}={value:g}: outside the assumption's stated range "
                             f"[{low:g}, {high:g}] {leaf.get('unit', '')}; widen the range in the file to go there")
        out[name] = value
    return out


def _leaves(tree: dict, prefix: str = "") -> dict[str, dict]:
    """Every numeric assumption of the YAML mapping: dotted name -> its leaf mapping."""
    found = {}
    for key, node in tree.items():
        name = f"{prefix}{key}"
        if isinstance(node, dict) and "unit" in node and ("value" in node or "low" in node):
            found[name] = node
        elif isinstance(node, dict):
            found.update(_leaves(node, name + "."))
    return found


def cmd_whatif(args: argparse.Namespace) -> int:
    import datetime as dt

    import yaml

    from configuration.assumptions import AssumptionsError, load_configuration
    from configuration.yaml_file import read_mapping
    from warehouse.io import connect, data_as_of, published_copy, replace_table_from_frame

    paths = Paths.from_env(assumptions=args.assumptions)
    source = published_copy(paths.warehouse) if published_copy(paths.warehouse).exists() else paths.warehouse
    if not source.exists():
        print(f"error: no warehouse at {source}; run `tokens2chips run` first", file=sys.stderr)
        return 2
    tree, _ = read_mapping(paths.assumptions, UsageError)
    leaves = _leaves(tree)
    changes = parse_sets(args.set, leaves)
    if not changes:
        raise UsageError("give at least one --set KEY=VALUE")
    before = {name: leaves[name].get("value") for name in changes}
    for name, value in changes.items():
        leaves[name]["value"] = value
    started = time.perf_counter()
    work = Path(args.out) if args.out else WHATIF_DIR
    work.mkdir(parents=True, exist_ok=True)
    assumptions = work / "assumptions.yaml"
    assumptions.write_text(yaml.dump(tree, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False,
                                     allow_unicode=True))
    try:
        load_configuration(assumptions)
    except AssumptionsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    warehouse = work / "warehouse.duckdb"
    shutil.copyfile(source, warehouse)
    # the serving model's kept results (assets/hardware.py): a what-if that moves no serving input reuses them
    from assets.hardware import serve_memo_dir

    kept, mine = serve_memo_dir(paths.reports_dir), serve_memo_dir(work / "reports")
    for memo in kept.glob("serve-*.pkl"):
        if not (mine / memo.name).exists():
            mine.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(memo, mine / memo.name)
    import polars as pl

    con = connect(warehouse)
    try:
        as_of = data_as_of(con) or dt.datetime.now(dt.timezone.utc).date()
        replace_table_from_frame(con, "meta.whatif", pl.DataFrame({
            "name": list(changes), "file_value": [before[n] for n in changes],
            "whatif_value": list(changes.values()), "unit": [leaves[n].get("unit", "") for n in changes]},
            schema={"name": pl.Utf8, "file_value": pl.Float64, "whatif_value": pl.Float64, "unit": pl.Utf8}))
    finally:
        con.close()
    copied = time.perf_counter()
    from reports.chart_cache import start_workers

    start_workers()  # they load the drawing code on the second core while the fleet model runs on the first
    keys, steps = materialise(Paths(paths.data_dir, warehouse, work / "reports", assumptions), as_of,
                              recalibrate=any(n.startswith(CALIBRATION_PREFIXES) for n in changes),
                              changed=list(changes))
    done = time.perf_counter()
    print(f"what-if: {', '.join(f'{n} {before[n]:g} -> {v:g}' for n, v in changes.items())}")
    print(f"  re-materialised {len(keys)} assets downstream of meta.assumptions (forecasts reused) in "
          f"{done - copied:.1f} s; copy and checks {copied - started:.1f} s")
    slowest = sorted(steps.items(), key=lambda kv: -kv[1])[:3]
    print(f"  slowest steps: {', '.join(f'{k} {v:.1f} s' for k, v in slowest)}; "
          f"{len(steps)} steps {sum(steps.values()):.1f} s in all")
    print(f"  warehouse: {warehouse}\n  report:    {work / 'reports' / as_of.isoformat() / 'report.html'}")
    return 0


def unaffected_sql_tables(changed: list[str]) -> list[str]:
    """The SQL models that read meta.assumptions but none of the `changed` names: a model names the
    assumptions it reads as literals ('installed_base.service_life_years') or prefixes ('report.interactivity_%');
    one that reads meta.assumptions without naming any counts as affected."""
    import re

    from warehouse.io import read_sql, referenced_tables, sql_files

    out = []
    for table in sql_files():
        sql = re.sub(r"--[^\n]*", "", read_sql(table))
        if "meta.assumptions" not in referenced_tables(sql):
            continue
        named = [t for t in re.findall(r"'([^']*)'", sql) if "." in t or t.endswith("%")]
        if named and not any(c == n or (n.endswith("%") and c.startswith(n[:-1])) for n in named for c in changed):
            out.append(table)
    return out


def materialise(paths: Paths, as_of, recalibrate: bool, changed: list[str] | None = None
                ) -> tuple[list[str], dict[str, float]]:
    """Materialise the assets downstream of meta.assumptions, minus the forecasts (and the calibration unless
    asked) and minus the SQL models that read none of the `changed` assumptions (and what only they feed), in
    process, against `paths`; returns the asset keys run and each step's seconds. Raises on a failed step."""
    import dagster as dg

    from assets.forecast import forecast_marts, forecast_vintage
    from assets.hardware import throughput_calibration
    from assets.resources import ProjectSettings, Warehouse
    from pipelines.definitions import all_assets, all_checks

    # the forecasts are reused (demand does not depend on a hardware assumption); the calibration too unless
    # a serving or hardware value changed
    reused = [forecast_marts, forecast_vintage, *([] if recalibrate else [throughput_calibration])]
    root = dg.AssetSelection.assets(dg.AssetKey(["meta", "assumptions"]))
    untouched = dg.AssetSelection.assets(*[dg.AssetKey(t.split(".")) for t in unaffected_sql_tables(changed or [])])
    # meta.assumptions (rewritten from the what-if's file), then everything downstream of the readers the
    # change reaches; a reader the change does not reach re-runs only when another input of it changed
    reused_keys = dg.AssetSelection.assets(*reused)
    selection = root | ((root.downstream(depth=1) - root - untouched - reused_keys).downstream() - reused_keys)
    resources = {"warehouse": Warehouse(database=str(paths.warehouse)),
                 "settings": ProjectSettings(**settings_config(paths, as_of.isoformat()))}
    # a what-if is not a run of record: an in-memory instance (no run or event storage on disk)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([*all_assets, *all_checks], selection=selection, resources=resources,
                                instance=instance, raise_on_error=True,
                                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
        steps = {s.step_key: s.end_time - s.start_time for s in instance.get_run_step_stats(result.run_id)
                 if s.start_time is not None and s.end_time is not None}
    return sorted({e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}), steps


def add_parser(sub) -> None:
    whatif = sub.add_parser("whatif", help="change assumptions and rebuild only what they touch, apart from the "
                            "warehouse of record")
    whatif.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an assumption of config/assumptions.yaml and its value, e.g. fleet.utilisation=0.7 "
                        "(repeat for several)")
    whatif.add_argument("--assumptions", help="the assumptions file to start from (env T2C_ASSUMPTIONS, default "
                        "config/assumptions.yaml)")
    whatif.add_argument("--out", help="working directory (default var/whatif/): its warehouse copy and report")
    whatif.set_defaults(func=cmd_whatif)
