"""Each source's published format, parsed into a typed polars frame: one function per source, each failing
with a FeedError that names the source, the field (JSON path or CSV line and column) and the value.

The frames' columns are the raw feed tables' columns (raw.feed_<source>, without the vintage columns);
`KEYS` gives each source's natural key (unique within a payload) and `VALUES` the columns whose change
between vintages is a restatement (marts.source_revisions)."""

from __future__ import annotations

import datetime as dt
import difflib
import io
import json
import re
import zipfile
from dataclasses import dataclass

import polars as pl

from feeds.errors import FeedError


@dataclass(frozen=True)
class Parsed:
    frame: pl.DataFrame
    as_of: dt.datetime | None  # what the payload says it is as of (None: use the retrieval time)


KEYS = {
    "openrouter": ("day", "model_permaslug"),
    "epoch": ("designer", "chip_type", "start_date"),
    "mlperf": ("version", "location"),
    "inferencex": ("date", "model", "hardware", "framework", "precision", "spec_method", "disagg",
                   "benchmark_type", "isl", "osl", "conc", "num_prefill_gpu", "num_decode_gpu"),
}
VALUES = {
    "openrouter": ("total_tokens",),
    "epoch": ("units_med", "h100e_med", "power_mw_med", "units_p5", "units_p95"),
    "mlperf": ("performance_result",),
    "inferencex": ("tput_per_gpu", "output_tput_per_gpu", "median_intvty"),
}
# a key of an earlier vintage missing from a later one counts as vanished only inside the later
# vintage's scope: the days it covers, the designers it reports, the rounds it holds
SCOPE = {"openrouter": ("range", "day"), "epoch": ("set", "designer"), "mlperf": ("set", "version"),
         "inferencex": ("range", "date")}

# MLPerf Inference rounds and the day their results were published (mlcommons.org results pages)
MLPERF_ROUNDS = {"v4.0": dt.date(2024, 3, 27), "v4.1": dt.date(2024, 8, 28), "v5.0": dt.date(2025, 4, 2),
                 "v5.1": dt.date(2025, 9, 9)}

_KIND = {"text": pl.Utf8, "date": pl.Date, "number": pl.Float64, "int": pl.Int64, "bool": pl.Boolean}


def _json(source: str, files: dict[str, bytes]):
    """The one JSON file of a payload, decoded (the JSON feeds serve one body per response)."""
    if len(files) != 1:
        raise FeedError(source, f"expected one JSON file per payload, got {len(files)}: {sorted(files)}")
    (body,) = files.values()
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FeedError(source, f"not valid UTF-8 at byte {exc.start}", "$") from None
    except json.JSONDecodeError as exc:
        ends_early = exc.pos >= len(body.rstrip()) - 1 or body.rstrip()[-1:] not in (b"}", b"]")
        hint = "the body ends early (truncated)" if ends_early else "malformed JSON"
        raise FeedError(source, f"{hint}: {exc.msg} at byte {exc.pos} of {len(body):,}", "$") from None


def _where(path: str, index: int, column: str) -> str:
    return f"{path}[{index}].{column}" if path != "csv" else f"line {index + 2}, column '{column}'"


def _columns(source: str, items: list, path: str, spec: dict[str, str], required: tuple[str, ...]) -> pl.DataFrame:
    """A frame of text columns from a list of JSON objects, checking each is an object and carries every
    required field (a missing field is named with the fields the item does have)."""
    bad = next((i for i, item in enumerate(items) if not isinstance(item, dict)), None)
    if bad is not None:
        raise FeedError(source, f"expected an object, got {type(items[bad]).__name__}", f"{path}[{bad}]")
    for column in required:
        missing = next((i for i, item in enumerate(items) if column not in item), None)
        if missing is not None:
            present = sorted(items[missing])
            near = difflib.get_close_matches(column, present, 1, 0.5)
            hint = f" (renamed to '{near[0]}'?)" if near else ""
            raise FeedError(source, f"missing{hint}; the item has {present}", _where(path, missing, column))
    return pl.DataFrame({column: pl.Series(column, [None if (v := item.get(column)) is None
                                                   else (json.dumps(v) if isinstance(v, (dict, list)) else str(v))
                                                   for item in items], dtype=pl.Utf8)
                         for column in spec})


def _typed(source: str, text: pl.DataFrame, spec: dict[str, str], required: tuple[str, ...], path: str,
           date_formats: tuple[str, ...] = ("%Y-%m-%d",)) -> pl.DataFrame:
    """Cast text columns to their kinds; the first value that does not parse (or a required value that is
    empty) is a FeedError naming its row and column."""
    exprs = []
    for column, kind in spec.items():
        raw = pl.col(column).str.strip_chars()
        if kind == "date":
            parsed = pl.coalesce([raw.str.slice(0, 10).str.to_date(fmt, strict=False) if fmt == "%Y-%m-%d"
                                  else raw.str.to_date(fmt, strict=False) for fmt in date_formats])
        elif kind in ("number", "int"):
            parsed = raw.str.replace_all(",", "").cast(pl.Float64, strict=False)
            if kind == "int":
                parsed = parsed.round(0).cast(pl.Int64)
        elif kind == "bool":
            lowered = raw.str.to_lowercase()
            # true/false, 1/0, yes/no, and Airtable's checkbox export ("checked" or empty)
            parsed = (pl.when(lowered.is_in(["true", "1", "yes", "checked"])).then(True)
                      .when(lowered.is_in(["false", "0", "no", ""])).then(False).otherwise(None))
        else:
            parsed = pl.when(raw == "").then(None).otherwise(pl.col(column))
        exprs.append(parsed.alias(column))
    typed = text.select(exprs)
    for column, kind in spec.items():
        given = text[column].str.strip_chars().fill_null("") != ""
        failed = typed[column].is_null() & given
        if kind == "number":
            failed = failed | (typed[column].is_not_null() & ~typed[column].is_finite())
        if column in required:
            failed = failed | ~given
        if failed.any():
            i = int(failed.arg_max())
            value = text[column][i]
            what = "missing (required)" if not (value or "").strip() else f"value {value!r} is not a valid {kind}"
            raise FeedError(source, what, _where(path, i, column))
    return typed


def _unique(source: str, frame: pl.DataFrame, keys: tuple[str, ...], path: str) -> None:
    groups = (frame.select(keys).with_row_index("_i").group_by(keys, maintain_order=True)
              .agg(pl.col("_i")).filter(pl.col("_i").list.len() > 1))
    if groups.height:
        first = groups.row(0, named=True)
        i, j = first["_i"][:2]
        label = ", ".join(f"{k}={first[k]}" for k in keys)
        where = f"{path}[{i}] and {path}[{j}]" if path != "csv" else f"lines {i + 2} and {j + 2}"
        raise FeedError(source, f"duplicate key ({label}) at {where}", ", ".join(keys))


def _non_negative(source: str, frame: pl.DataFrame, columns: tuple[str, ...], path: str) -> None:
    for column in columns:
        negative = frame[column].fill_null(0) < 0
        if negative.any():
            i = int(negative.arg_max())
            raise FeedError(source, f"negative value {frame[column][i]}", _where(path, i, column))


# --- OpenRouter Data API: GET /api/v1/datasets/rankings-daily -------------------------------------------
OPENROUTER_ITEM = {"date": "date", "model_permaslug": "text", "total_tokens": "number"}


def parse_openrouter(files: dict[str, bytes]) -> Parsed:
    source = "openrouter"
    doc = _json(source, files)
    if not isinstance(doc, dict):
        raise FeedError(source, "expected an object with 'data' and 'meta'", "$")
    for name, kind in (("data", list), ("meta", dict)):
        if name not in doc:
            raise FeedError(source, f"missing; the response has {sorted(doc)}", name)
        if not isinstance(doc[name], kind):
            raise FeedError(source, f"expected {'an array' if kind is list else 'an object'}", name)
    meta = doc["meta"]
    if "as_of" not in meta:
        raise FeedError(source, f"missing; meta has {sorted(meta)}", "meta.as_of")
    try:
        as_of = dt.datetime.fromisoformat(str(meta["as_of"]).replace("Z", "+00:00"))
    except ValueError:
        raise FeedError(source, f"value {meta['as_of']!r} is not an ISO-8601 timestamp", "meta.as_of") from None
    items = doc["data"]
    text = _columns(source, items, "data", OPENROUTER_ITEM, tuple(OPENROUTER_ITEM))
    bad = ~text["total_tokens"].fill_null("").str.strip_chars().str.contains(r"^\d+(\.\d+)?$")
    if bad.any():
        i = int(bad.arg_max())
        raise FeedError(source, f"value {text['total_tokens'][i]!r} is not a non-negative decimal token count",
                        f"data[{i}].total_tokens")
    frame = _typed(source, text, OPENROUTER_ITEM, tuple(OPENROUTER_ITEM), "data").rename({"date": "day"})
    _unique(source, frame, KEYS[source], "data")
    return Parsed(frame.sort("day", "model_permaslug"), as_of.astimezone(dt.timezone.utc))


# --- Epoch AI, AI chip sales: quarterly_by_chip.csv (in ai_chip_sales.zip) ------------------------------
EPOCH_COLUMNS = {
    "designer": "text", "chip_type": "text", "start_date": "date", "end_date": "date",
    "units_p5": "number", "units_med": "number", "units_p95": "number",
    "h100e_p5": "number", "h100e_med": "number", "h100e_p95": "number",
    "power_mw_p5": "number", "power_mw_med": "number", "power_mw_p95": "number",
    "incomplete": "bool", "notes": "text",
}
# the column names Epoch has published, mapped to one name each: the canonical snake_case export, the
# public display names (docs/schema.md of epoch-research/ai-chip-counts) and the earlier export
EPOCH_ALIASES = {
    "designer": ("designer", "Designer", "Chip manufacturer"),
    "chip_type": ("chip_type", "Chip type"),
    "start_date": ("start_date", "Start date"),
    "end_date": ("end_date", "End date"),
    "units_med": ("units_med", "Number of units (median)", "Number of Units"),
    "units_p5": ("units_p5", "Number of units (5th percentile)", "Number of Units (5th percentile)"),
    "units_p95": ("units_p95", "Number of units (95th percentile)", "Number of Units (95th percentile)"),
    "h100e_med": ("h100e_med", "H100e (median)", "Compute estimate in H100e (median)"),
    "h100e_p5": ("h100e_p5", "H100e (5th percentile)"),
    "h100e_p95": ("h100e_p95", "H100e (95th percentile)"),
    "power_mw_med": ("power_mw_med", "Power (MW) (median)", "Power in MW (median)"),
    "power_mw_p5": ("power_mw_p5", "Power (MW) (5th percentile)", "Power in MW (5th percentile)"),
    "power_mw_p95": ("power_mw_p95", "Power (MW) (95th percentile)", "Power in MW (95th percentile)"),
    "incomplete": ("incomplete", "Incomplete"),
    "notes": ("notes", "Notes"),
}
EPOCH_OLD_SPELLINGS = {"H100": "H100/H200", "Trainium1/Inferentia": "Trainium1"}
EPOCH_REQUIRED = ("designer", "chip_type", "start_date", "end_date", "units_med")
_GENERATED = re.compile(r"[Gg]enerated on:? (\d{4}-\d{2}-\d{2}|\d{2}-\d{2}-\d{4}) (\d{2}:\d{2})")


def _epoch_csvs(files: dict[str, bytes]) -> list[tuple[str, bytes]]:
    """The quarterly-by-chip CSVs of a payload: CSV files as they are, and inside a zip (the data hub's
    download) the quarterly_by_chip file."""
    out = []
    for name, body in files.items():
        if body[:2] == b"PK":
            try:
                archive = zipfile.ZipFile(io.BytesIO(body))
            except zipfile.BadZipFile:
                raise FeedError("epoch", f"{name} is not a readable zip (truncated?)", name) from None
            csvs = [m for m in archive.namelist() if m.lower().endswith(".csv") and "owner" not in m.lower()]
            members = [m for m in csvs if "quarterly" in m.lower() and "chip" in m.lower()] or \
                [m for m in csvs if "cumulative" not in m.lower()]
            if not members:
                raise FeedError("epoch", f"{name} holds no quarterly_by_chip CSV; it has {archive.namelist()}", name)
            out += [(f"{name}:{m}", archive.read(m)) for m in members]
        else:
            out.append((name, body))
    return out


def _epoch_one(name: str, body: bytes) -> tuple[pl.DataFrame, list[dt.datetime]]:
    source = "epoch"
    try:
        text = pl.read_csv(io.BytesIO(body), infer_schema=False, truncate_ragged_lines=False)
    except Exception as exc:  # polars' own message names the line
        raise FeedError(source, f"{name} is not a readable CSV ({str(exc).splitlines()[0]})", name) from None
    renames = {}
    for canonical, names in EPOCH_ALIASES.items():
        wanted = {" ".join(n.lower().split()) for n in names}
        hit = next((c for c in text.columns if " ".join(c.lower().split()) in wanted), None)
        if hit is not None:
            renames[hit] = canonical
    missing = [c for c in EPOCH_REQUIRED if c not in renames.values()]
    if missing:
        near = {m: difflib.get_close_matches(EPOCH_ALIASES[m][1], text.columns, 1, 0.6) for m in missing}
        hint = "; ".join(f"'{n[0]}' may be '{EPOCH_ALIASES[m][1]}'" for m, n in near.items() if n)
        raise FeedError(source, f"{name}: missing column(s) {[EPOCH_ALIASES[m][1] for m in missing]}"
                        + (f" ({hint})" if hint else "") + f"; the header has {text.columns}", missing[0])
    text = text.rename(renames).select(list(renames.values()))
    for column in EPOCH_COLUMNS:
        if column not in text.columns:
            text = text.with_columns(pl.lit(None, pl.Utf8).alias(column))
    if text.height == 0:
        raise FeedError(source, f"{name} has a header but no rows", "csv")
    frame = _typed(source, text.select(list(EPOCH_COLUMNS)), EPOCH_COLUMNS, EPOCH_REQUIRED, "csv",
                   date_formats=("%Y-%m-%d", "%m/%d/%Y"))
    # the earlier export had no Incomplete column: its notes start "Incomplete: ..."
    frame = frame.with_columns(pl.col("incomplete").fill_null(pl.col("notes").fill_null("").str.starts_with("Incomplete")))
    _non_negative(source, frame, ("units_p5", "units_med", "units_p95", "h100e_med", "power_mw_med"), "csv")
    stamps = []
    for date, clock in {m.groups() for m in _GENERATED.finditer(body.decode("utf-8", "replace"))}:
        day = dt.date.fromisoformat(date) if date[4] == "-" else dt.datetime.strptime(date, "%m-%d-%Y").date()
        stamps.append(dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=dt.timezone.utc))
    return frame, stamps


def parse_epoch(files: dict[str, bytes]) -> Parsed:
    frames, stamps = [], []
    for name, body in _epoch_csvs(files):
        frame, found = _epoch_one(name, body)
        frames.append(frame)
        stamps += found
    # spellings of the earlier export, mapped as Epoch's schema maps them on the way in
    frame = pl.concat(frames).drop("notes").with_columns(
        pl.col("chip_type").str.strip_prefix("Instinct ").replace(EPOCH_OLD_SPELLINGS))
    _unique("epoch", frame, KEYS["epoch"], "csv")
    return Parsed(frame.sort("designer", "chip_type", "start_date"), max(stamps) if stamps else None)


# --- MLPerf Inference: summary_results.json of a results repository -------------------------------------
MLPERF_ITEM = {"version": "text", "ID": "text", "Submitter": "text", "Category": "text", "Suite": "text",
               "Availability": "text", "System": "text", "Platform": "text", "Model": "text", "Scenario": "text",
               "Accelerator": "text", "a#": "number", "Nodes": "number", "weight_data_types": "text",
               "Performance_Result": "number", "Performance_Units": "text", "Location": "text"}
MLPERF_REQUIRED = ("version", "Model", "Scenario", "Performance_Result", "Performance_Units",
                   "Location")
MLPERF_NAMES = {"ID": "result_id", "a#": "accelerators_per_node", "Performance_Result": "performance_result",
                "Performance_Units": "performance_units"}


def parse_mlperf(files: dict[str, bytes]) -> Parsed:
    source = "mlperf"
    doc = _json(source, files)
    if not isinstance(doc, list):
        raise FeedError(source, "expected an array of results (summary_results.json)", "$")
    if not doc:
        raise FeedError(source, "the array of results is empty", "$")
    text = _columns(source, doc, "$", MLPERF_ITEM, MLPERF_REQUIRED)
    frame = _typed(source, text, MLPERF_ITEM, MLPERF_REQUIRED, "$")
    frame = frame.rename(MLPERF_NAMES).rename(str.lower)
    _non_negative(source, frame, ("performance_result",), "$")
    _unique(source, frame, KEYS[source], "$")
    versions = frame["version"].unique().to_list()
    dates = [MLPERF_ROUNDS[v] for v in versions if v in MLPERF_ROUNDS]
    as_of = (dt.datetime.combine(max(dates), dt.time(), dt.timezone.utc)
             if dates and len(dates) == len(versions) else None)
    return Parsed(frame.sort("version", "location"), as_of)


# --- SemiAnalysis InferenceX: benchmark rows of its public API --------------------------------------------
INFERENCEX_ITEM = {"date": "date", "model": "text", "hardware": "text", "framework": "text", "precision": "text",
                   "spec_method": "text", "disagg": "bool", "benchmark_type": "text", "isl": "int", "osl": "int",
                   "conc": "int", "num_prefill_gpu": "int", "num_decode_gpu": "int"}
INFERENCEX_METRICS = {"tput_per_gpu": "number", "output_tput_per_gpu": "number", "input_tput_per_gpu": "number",
                      "median_intvty": "number", "median_tpot": "number", "median_ttft": "number"}
INFERENCEX_REQUIRED = ("date", "model", "hardware", "framework", "precision", "isl", "osl", "conc")


def parse_inferencex(files: dict[str, bytes]) -> Parsed:
    source = "inferencex"
    doc = _json(source, files)
    items = next((doc[k] for k in ("data", "benchmarks", "rows", "results") if k in doc), None) \
        if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise FeedError(source, "expected an array of benchmark rows (or an object with 'data', 'benchmarks', "
                        "'rows' or 'results')", "$")
    if not items:
        raise FeedError(source, "the array of benchmark rows is empty", "$")
    text = _columns(source, items, "data", INFERENCEX_ITEM, INFERENCEX_REQUIRED)
    # the metrics sit in a `metrics` object (the API's rows), or beside the other fields (its "hot columns")
    bad = next((i for i, item in enumerate(items)
                if not isinstance(item.get("metrics"), dict) and "tput_per_gpu" not in item), None)
    if bad is not None:
        raise FeedError(source, "missing or not an object (and no tput_per_gpu beside the other fields)",
                        f"data[{bad}].metrics")
    metrics = _columns(source, [item["metrics"] if isinstance(item.get("metrics"), dict) else item
                                for item in items], "data[].metrics", INFERENCEX_METRICS, ("tput_per_gpu",))
    frame = pl.concat([_typed(source, text, INFERENCEX_ITEM, INFERENCEX_REQUIRED, "data"),
                       _typed(source, metrics, INFERENCEX_METRICS, ("tput_per_gpu",), "data[].metrics")],
                      how="horizontal_extend")
    frame = frame.with_columns(pl.col("spec_method").fill_null("none"), pl.col("disagg").fill_null(False),
                               pl.col("benchmark_type").fill_null("single_turn"),
                               pl.col("num_prefill_gpu").fill_null(0), pl.col("num_decode_gpu").fill_null(0))
    _non_negative(source, frame, tuple(INFERENCEX_METRICS), "data")
    _unique(source, frame, KEYS[source], "data")
    newest = frame["date"].max()
    return Parsed(frame.sort(*KEYS[source]), dt.datetime.combine(newest, dt.time(23, 59, 59), dt.timezone.utc))


SCHEMAS = {
    "openrouter": {"day": pl.Date, "model_permaslug": pl.Utf8, "total_tokens": pl.Float64},
    "epoch": {k: _KIND[v] for k, v in EPOCH_COLUMNS.items() if k != "notes"},
    "mlperf": {MLPERF_NAMES.get(k, k).lower(): _KIND[v] for k, v in MLPERF_ITEM.items()},
    "inferencex": {**{k: _KIND[v] for k, v in INFERENCEX_ITEM.items()},
                   **{k: _KIND[v] for k, v in INFERENCEX_METRICS.items()}},
}


def parse(source: str, files: dict[str, bytes]) -> Parsed:
    """`files` (name -> bytes) of one payload of `source`, parsed and given the columns of SCHEMAS[source]."""
    parsed = PARSERS[source](files)
    frame = parsed.frame.select([pl.col(c).cast(t) for c, t in SCHEMAS[source].items()])
    return Parsed(frame, parsed.as_of)


PARSERS = {"openrouter": parse_openrouter, "epoch": parse_epoch, "mlperf": parse_mlperf,
           "inferencex": parse_inferencex}
