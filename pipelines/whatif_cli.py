"""`tokens2chips whatif --set KEY=VALUE [...]`: change assumptions and see the effect, without touching the
warehouse or the report of record.

The published warehouse is copied to var/whatif/warehouse.duckdb; the assumptions file, with the values set,
to var/whatif/assumptions.yaml (validated like any run's); then only the assets downstream of
meta.assumptions are materialised (Dagster, in process), reusing the forecasts (and the serving calibration
unless an entry or a SQL table it reads changed: needs_recalibration), and the report is rebuilt under
var/whatif/reports/, with a banner naming the assumptions that differ from the file (meta.whatif)."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from functools import cache
from pathlib import Path

from pipelines.settings import PROJECT_ROOT, Paths, settings_config
from pipelines.usage import UsageError

WHATIF_DIR = PROJECT_ROOT / "var" / "whatif"


def parse_sets(pairs: list[str], leaves: dict[str, dict], given: str = "--set ") -> dict[str, float]:
    """KEY=VALUE pairs -> {assumption name: value}, each a numeric leaf of the assumptions file and inside
    its stated range. `given` starts each error (how the pair was given: the option, or nothing in a loop)."""
    import difflib

    out = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep:
            raise UsageError(f"{given}{pair!r}: expected KEY=VALUE, e.g. fleet.utilisation=0.7")
        if name not in leaves:
            near = difflib.get_close_matches(name, list(leaves), 3, 0.6)
            raise UsageError(f"{given}{name}: not an assumption of the file"
                             + (f" (closest: {', '.join(near)})" if near else ""))
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"{given}{name}={text!r}: not a number") from None
        leaf = leaves[name]
        low, high = leaf.get("low"), leaf.get("high")
        if (low is not None and value < low) or (high is not None and value > high):
            raise UsageError(f"{given}{name}={value:g}: outside the assumption's stated range "
                             f"[{low:g}, {high:g}] {leaf.get('unit', '')}; widen the range in the file to go there")
        out[name] = value
    return out


def _change(name: str, was: float, value: float) -> str:
    return f"{name} {was:g} -> {value:g}" if value != was else f"{name} {value:g} (the file's value: unchanged)"


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


class WhatIf:
    """A what-if session: the published warehouse and the assumptions file it starts from, and the work directory
    (`out`) its copy, file and report go to. `apply(changes)` runs one what-if against the file (each one from
    the file's values, not from the previous what-if); a loop keeps one session, so that Python, Dagster, the
    drawing workers and the serving model's kept results are loaded once."""

    def __init__(self, assumptions: str | None, out: str | None, keep_workers: bool = False):
        from configuration.yaml_file import read_mapping
        from warehouse.io import published_copy

        self.paths = Paths.from_env(assumptions=assumptions)
        published = published_copy(self.paths.warehouse)
        self.source = published if published.exists() else self.paths.warehouse
        if not self.source.exists():
            raise UsageError(f"no warehouse at {self.source}; run `tokens2chips run` first")
        self.tree, _ = read_mapping(self.paths.assumptions, UsageError)
        self.leaves = _leaves(self.tree)
        self.work = Path(out) if out else WHATIF_DIR
        self.work.mkdir(parents=True, exist_ok=True)
        # the serving model's kept results (assets/hardware.py): a what-if that moves no serving input reuses them
        from assets.hardware import serve_memo_dir

        kept, mine = serve_memo_dir(self.paths.reports_dir), serve_memo_dir(self.work / "reports")
        for memo in kept.glob("serve-*.pkl"):
            if not (mine / memo.name).exists():
                mine.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(memo, mine / memo.name)
        from reports.chart_cache import start_workers

        start_workers(keep=keep_workers)  # they load the drawing code on the second core while the model runs
        self.instance = None

    def apply(self, pairs: list[str], given: str = "--set ") -> str:
        """Run the what-if KEY=VALUE `pairs`; returns its summary lines. Raises UsageError on a bad pair or
        file, changing nothing (its message starts with `given`, see parse_sets)."""
        import copy
        import datetime as dt

        import polars as pl
        import yaml

        from configuration.assumptions import AssumptionsError, load_configuration
        from warehouse.io import connect, data_as_of, replace_table_from_frame

        tree = copy.deepcopy(self.tree)
        leaves = _leaves(tree)
        changes = parse_sets(pairs, leaves, given)
        if not changes:
            raise UsageError("give at least one KEY=VALUE, e.g. fleet.utilisation=0.7")
        before = {name: leaves[name].get("value") for name in changes}
        for name, value in changes.items():
            leaves[name]["value"] = value
        started = time.perf_counter()
        assumptions = self.work / "assumptions.yaml"
        text = yaml.dump(tree, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False,
                         allow_unicode=True)
        candidate = self.work / ".assumptions.yaml.new"
        candidate.write_text(text)
        try:
            load_configuration(candidate)
        except AssumptionsError as exc:
            raise UsageError(str(exc)) from None
        candidate.replace(assumptions)
        warehouse = self.work / "warehouse.duckdb"
        shutil.copyfile(self.source, warehouse)
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
        if self.instance is None:
            import dagster as dg

            # a what-if is not a run of record: an in-memory instance (no run or event storage on disk)
            self.instance = dg.DagsterInstance.ephemeral()
        keys, steps = materialise(Paths(self.paths.data_dir, warehouse, self.work / "reports", assumptions), as_of,
                                  changed=list(changes), instance=self.instance)
        done = time.perf_counter()
        slowest = sorted(steps.items(), key=lambda kv: -kv[1])[:3]
        return "\n".join([
            "what-if: " + ", ".join(_change(n, before[n], v) for n, v in changes.items()),
            f"  re-materialised {len(keys)} assets downstream of meta.assumptions (forecasts reused) in "
            f"{done - copied:.1f} s; copy and checks {copied - started:.1f} s",
            f"  slowest steps: {', '.join(f'{k} {v:.1f} s' for k, v in slowest)}; "
            f"{len(steps)} steps {sum(steps.values()):.1f} s in all",
            f"  warehouse: {warehouse}",
            f"  report:    {self.work / 'reports' / as_of.isoformat() / 'report.html'}"])

    def close(self) -> None:
        from reports.chart_cache import stop_workers

        stop_workers()
        if self.instance is not None:
            self.instance.dispose()
            self.instance = None


LOOP_HELP = ("one what-if per line: KEY=VALUE [KEY=VALUE ...] (each line against the assumptions file, not the "
             "previous line); `keys [PREFIX]` lists the assumptions and their ranges; `quit` or end of input ends")


def cmd_whatif(args: argparse.Namespace) -> int:
    if not args.loop and not args.set:
        raise UsageError("give at least one --set KEY=VALUE, or --loop to read what-ifs from the input")
    session = WhatIf(args.assumptions, args.out, keep_workers=args.loop)
    try:
        if args.set:
            print(session.apply(args.set), flush=True)
        if args.loop:
            return _loop(session)
    finally:
        session.close()
    return 0


def _loop(session: WhatIf) -> int:
    """Read what-ifs from stdin until `quit` or end of input; a bad line is one `error:` line, and the loop goes
    on. Each what-if's summary ends with its `report:` line (what a driving script waits for)."""
    import shlex

    interactive = sys.stdin.isatty()
    if interactive:
        print(LOOP_HELP)
    while True:
        if interactive:
            print("what-if> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line or line.strip() in ("quit", "exit", "q"):
            return 0
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "keys":
            names = [n for n in session.leaves if n.startswith(words[1] if len(words) > 1 else "")]
            for name in names:
                leaf = session.leaves[name]
                print(f"  {name} = {leaf.get('value')} {leaf.get('unit', '')} (range {leaf.get('low')} to "
                      f"{leaf.get('high')})")
            continue
        try:
            print(session.apply(words, given=""), flush=True)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
        except Exception as exc:  # a failed step: the what-if's scratch copy is left as it is, the loop goes on
            print(f"error: the what-if failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                  file=sys.stderr, flush=True)


@cache
def _assumption_readers() -> dict[str, list[str]]:
    """The SQL models that read meta.assumptions, each with the assumptions it names as literals
    ('installed_base.service_life_years') or prefixes ('report.interactivity_%'); none named: it reads them all.
    Read once per process (the SQL is code: a what-if loop asks for every line)."""
    import re

    from warehouse.io import read_sql, referenced_tables, sql_files

    out = {}
    for table in sql_files():
        sql = re.sub(r"--[^\n]*", "", read_sql(table))
        if "meta.assumptions" in referenced_tables(sql):
            out[table] = [t for t in re.findall(r"'([^']*)'", sql) if "." in t or t.endswith("%")]
    return out


def unaffected_sql_tables(changed: list[str]) -> list[str]:
    """The SQL models that read meta.assumptions but none of the `changed` names (one that reads
    meta.assumptions without naming any counts as affected)."""
    return [table for table, named in _assumption_readers().items()
            if named and not any(c == n or (n.endswith("%") and c.startswith(n[:-1])) for n in named for c in changed)]


def needs_recalibration(changed: list[str]) -> bool:
    """Whether a what-if changing `changed` must fit the serving model again: it changes an entry the fit reads
    (hardware.serving.CALIBRATION_ENTRIES), or a SQL table the fit reads re-runs (staging.accelerator_specs,
    for an entry its SQL names)."""
    from assets.hardware import CALIBRATION_DEPS
    from hardware.serving import CALIBRATION_ENTRIES

    if CALIBRATION_ENTRIES.intersection(changed):
        return True
    readers, unaffected = _assumption_readers(), set(unaffected_sql_tables(changed))
    return any(t in readers and t not in unaffected for t in (".".join(k.path) for k in CALIBRATION_DEPS))


def materialise(paths: Paths, as_of, changed: list[str], instance) -> tuple[list[str], dict[str, float]]:
    """Materialise the assets downstream of meta.assumptions, minus the forecasts (and the calibration unless
    needs_recalibration) and minus the SQL models that read none of the `changed` assumptions (and what only they feed), in
    process, against `paths` on the Dagster `instance`; returns the asset keys run and each step's
    seconds. Raises on a failed step."""
    import dagster as dg

    from assets.forecast import forecast_marts, forecast_vintage
    from assets.hardware import throughput_calibration
    from assets.resources import ProjectSettings, Warehouse
    from pipelines.definitions import all_assets, all_checks

    # the forecasts are reused (demand does not depend on a hardware assumption); the calibration too unless
    # an input of its fit changed
    reused = [forecast_marts, forecast_vintage, *([] if needs_recalibration(changed) else [throughput_calibration])]
    root = dg.AssetSelection.assets(dg.AssetKey(["meta", "assumptions"]))
    untouched = dg.AssetSelection.assets(*[dg.AssetKey(t.split(".")) for t in unaffected_sql_tables(changed)])
    # meta.assumptions (rewritten from the what-if's file), then everything downstream of the readers the
    # change reaches; a reader the change does not reach re-runs only when another input of it changed
    reused_keys = dg.AssetSelection.assets(*reused)
    selection = root | ((root.downstream(depth=1) - root - untouched - reused_keys).downstream() - reused_keys)
    resources = {"warehouse": Warehouse(database=str(paths.warehouse)),
                 "settings": ProjectSettings(**settings_config(paths, as_of.isoformat()))}
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
    whatif.add_argument("--loop", action="store_true",
                        help="after the --set values (if any), read further what-ifs from the input, one per line, "
                        "in one warm process: " + LOOP_HELP)
    whatif.add_argument("--out", help="working directory (default var/whatif/): its warehouse copy and report")
    whatif.set_defaults(func=cmd_whatif)
