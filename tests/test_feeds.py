"""The feed connectors against a local HTTP server that serves recorded payloads (the real client code runs;
no network): good answers, and every bad answer of the outside world ending in a clear message with the
previous vintage intact and nothing half-written."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import polars as pl
import pytest

from feeds import http, store
from feeds.catalog import FeedSettings
from feeds.errors import FeedError, FeedOffline
from feeds.formats import parse
from feeds.refresh import refresh
from feeds.revisions import compare
from warehouse.feeds import refresh_tables
from warehouse.io import read_sql, replace_table

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.timezone.utc)
FAST = http.HttpPolicy(timeout_s=0.5, attempts=3, backoff_s=0.01, max_retry_after_s=5)


def rankings(days: dict[str, dict[str, int]], as_of: str) -> bytes:
    """A rankings-daily body as OpenRouter serves it: token counts as decimal strings, 'other' last per day."""
    data = [{"date": day, "model_permaslug": slug, "total_tokens": str(tokens)}
            for day, models in sorted(days.items()) for slug, tokens in models.items()]
    return json.dumps({"data": data, "meta": {"as_of": as_of, "start_date": min(days), "end_date": max(days),
                                               "version": "v1"}}).encode()


WEEK = {f"2026-11-{d:02d}": {"deepseek/deepseek-v4": 900 + d, "qwen/qwen3-max": 500 + d, "other": 2000}
        for d in range(16, 23)}


class Server:
    """Serves queued responses per path: (status, headers, body, delay_s); the last one repeats."""

    def __init__(self):
        self.routes: dict[str, list[tuple]] = {}
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                path = self.path.split("?")[0]
                outer.hits.append(self.path)
                queue = outer.routes.get(path) or [(404, {}, b"not found", 0)]
                status, headers, body, delay = queue.pop(0) if len(queue) > 1 else queue[0]
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def openrouter(server: Server, *responses) -> FeedSettings:
    server.routes["/api/v1/datasets/rankings-daily"] = list(responses)
    return FeedSettings(urls={"openrouter": server.url}, keys={"openrouter": "test-key"})


def ok(body: bytes) -> tuple:
    return (200, {"Content-Type": "application/json"}, body, 0)


def snapshot_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_fetch_stores_the_payload_byte_for_byte_with_a_manifest(server, tmp_path):
    body = rankings(WEEK, "2026-11-23T02:00:00Z")
    outcome = refresh("openrouter", tmp_path, settings=openrouter(server, ok(body)), now=NOW, policy=FAST)
    assert outcome.status == "stored" and outcome.counts.rows == 21 and outcome.counts.new == 21
    snap = store.snapshots(tmp_path, "openrouter")[0]
    assert snap.vintage == "2026-11-23T020000Z"
    assert (snap.directory / "rankings-daily.json").read_bytes() == body
    manifest = json.loads((snap.directory / "manifest.json").read_text())
    assert manifest["licence"] == "CC BY 4.0" and "test-key" not in json.dumps(manifest)
    assert manifest["url"].startswith(server.url + "/api/v1/datasets/rankings-daily?start_date=2025-01-01")
    # the same payload again is one snapshot, said to be unchanged
    again = refresh("openrouter", tmp_path, settings=openrouter(server, ok(body)), now=NOW, policy=FAST)
    assert again.status == "unchanged" and len(store.snapshots(tmp_path, "openrouter")) == 1
    # the next fetch starts four weeks before the newest day held, to pick up restated days
    refresh("openrouter", tmp_path, settings=openrouter(server, ok(body)), now=NOW, policy=FAST)
    assert "start_date=2026-10-25" in server.hits[-1]


def test_timeout_gives_up_with_a_message_and_keeps_the_previous_vintage(server, tmp_path):
    refresh("openrouter", tmp_path, settings=openrouter(server, ok(rankings(WEEK, "2026-11-23T02:00:00Z"))),
            now=NOW, policy=FAST)
    before = snapshot_files(tmp_path)
    slow = (200, {}, rankings(WEEK, "2026-11-30T02:00:00Z"), 2.0)
    with pytest.raises(FeedError, match=r"gave up .* after 3 attempts; last: timed out after 0.5 s"):
        refresh("openrouter", tmp_path, settings=openrouter(server, slow), now=NOW, policy=FAST)
    assert snapshot_files(tmp_path) == before


def test_429_waits_as_long_as_retry_after_says_then_succeeds(server, tmp_path):
    waits = []
    settings = openrouter(server, (429, {"Retry-After": "2"}, b"slow down", 0), ok(rankings(WEEK, "2026-11-23T02:00:00Z")))
    outcome = refresh("openrouter", tmp_path, settings=settings, now=NOW, policy=FAST, sleep=waits.append)
    assert outcome.status == "stored" and waits == [2.0]


def test_429_asking_for_too_long_a_wait_stops_at_once(server, tmp_path):
    settings = openrouter(server, (429, {"Retry-After": "3600"}, b"", 0))
    with pytest.raises(FeedError, match=r"rate limited .*\(HTTP 429\) and asked to retry after 3600 s"):
        refresh("openrouter", tmp_path, settings=settings, now=NOW, policy=FAST, sleep=lambda s: None)
    assert snapshot_files(tmp_path) == []


def test_5xx_is_retried_and_a_persistent_5xx_is_an_error(server, tmp_path):
    waits = []
    settings = openrouter(server, (503, {}, b"", 0), ok(rankings(WEEK, "2026-11-23T02:00:00Z")))
    assert refresh("openrouter", tmp_path, settings=settings, now=NOW, policy=FAST, sleep=waits.append).status == "stored"
    assert len(waits) == 1
    settings = openrouter(server, (502, {}, b"bad gateway", 0))
    with pytest.raises(FeedError, match="after 3 attempts; last: HTTP 502"):
        refresh("openrouter", tmp_path / "other", settings=settings, now=NOW, policy=FAST, sleep=lambda s: None)
    assert not (tmp_path / "other").exists()


def test_truncated_body_is_refused(server, tmp_path):
    body = rankings(WEEK, "2026-11-23T02:00:00Z")
    cut = (200, {"Content-Length": str(len(body))}, body[: len(body) // 2], 0)
    with pytest.raises(FeedError, match="truncated body"):
        refresh("openrouter", tmp_path, settings=openrouter(server, cut), now=NOW, policy=FAST)
    # a body cut short without a Content-Length is caught by the parser
    with pytest.raises(FeedError, match=r"field '\$' the body ends early \(truncated\)"):
        parse("openrouter", {"x.json": body[:-3]})
    assert snapshot_files(tmp_path) == []


def test_renamed_or_missing_field_names_the_field(tmp_path):
    renamed = json.loads(rankings(WEEK, "2026-11-23T02:00:00Z"))
    renamed["data"][4]["tokens"] = renamed["data"][4].pop("total_tokens")
    with pytest.raises(FeedError, match=r"field 'data\[4\]\.total_tokens' missing \(renamed to 'tokens'\?\)"):
        parse("openrouter", {"x.json": json.dumps(renamed).encode()})
    no_meta = json.loads(rankings(WEEK, "2026-11-23T02:00:00Z"))
    del no_meta["meta"]["as_of"]
    with pytest.raises(FeedError, match=r"field 'meta\.as_of' missing"):
        parse("openrouter", {"x.json": json.dumps(no_meta).encode()})
    bad_number = json.loads(rankings(WEEK, "2026-11-23T02:00:00Z"))
    bad_number["data"][2]["total_tokens"] = "12e3x"
    with pytest.raises(FeedError, match=r"field 'data\[2\]\.total_tokens' value '12e3x' is not a non-negative"):
        parse("openrouter", {"x.json": json.dumps(bad_number).encode()})


def test_duplicate_keys_are_refused(server, tmp_path):
    doc = json.loads(rankings(WEEK, "2026-11-23T02:00:00Z"))
    doc["data"].append(dict(doc["data"][0]))
    with pytest.raises(FeedError, match=r"duplicate key \(day=2026-11-16, model_permaslug=deepseek/deepseek-v4\) "
                       r"at data\[0\] and data\[21\]"):
        refresh("openrouter", tmp_path, settings=openrouter(server, ok(json.dumps(doc).encode())), now=NOW,
                policy=FAST)
    assert snapshot_files(tmp_path) == []


def test_no_network_is_told_apart(tmp_path):
    settings = FeedSettings(urls={"openrouter": "http://feeds.invalid"}, keys={"openrouter": "k"})
    with pytest.raises(FeedOffline, match="no network"):
        refresh("openrouter", tmp_path, settings=settings, now=NOW, policy=FAST)
    assert snapshot_files(tmp_path) == []


def test_a_day_that_vanished_keeps_its_earlier_value(server, tmp_path):
    first = rankings(WEEK, "2026-11-23T02:00:00Z")
    later = {day: dict(models) for day, models in WEEK.items() if day != "2026-11-18"}
    later["2026-11-20"]["qwen/qwen3-max"] = 999  # restated
    settings = openrouter(server, ok(first), ok(rankings(later, "2026-11-24T02:00:00Z")))
    refresh("openrouter", tmp_path, settings=settings, now=NOW, policy=FAST)
    outcome = refresh("openrouter", tmp_path, settings=settings, now=NOW, policy=FAST)
    assert (outcome.counts.restated, outcome.counts.vanished, outcome.counts.new) == (1, 3, 0)
    assert "3 vanished (earlier values kept)" in outcome.message
    con = duckdb.connect()
    refresh_tables(con, tmp_path, None)
    revisions = con.execute("select key, change, old_value, new_value from marts.source_revisions "
                            "where source = 'openrouter' order by change, key").fetchall()
    assert revisions[0] == ("2026-11-20 | qwen/qwen3-max", "restated", 520.0, 999.0)
    assert {r[1] for r in revisions[1:]} == {"vanished"} and all(r[0].startswith("2026-11-18") for r in revisions[1:])
    replace_table(con, "staging.openrouter_daily", read_sql("staging.openrouter_daily"))
    kept = con.execute("select total_tokens, vintage from staging.openrouter_daily where day = date '2026-11-18' "
                       "and model_permaslug = 'qwen/qwen3-max'").fetchone()
    assert kept == (518.0, "2026-11-23T020000Z")
    assert con.execute("select total_tokens from staging.openrouter_daily where day = date '2026-11-20' "
                       "and model_permaslug = 'qwen/qwen3-max'").fetchone() == (999.0,)


def test_a_changed_snapshot_file_is_an_error(tmp_path):
    payload = tmp_path / "in.json"
    payload.write_bytes(rankings(WEEK, "2026-11-23T02:00:00Z"))
    snap = refresh("openrouter", tmp_path / "snaps", payload=payload, now=NOW).snapshot
    (snap.directory / "in.json").write_bytes(rankings(WEEK, "2026-11-23T03:00:00Z"))
    with pytest.raises(FeedError, match="no longer matches the sha256"):
        snap.read()


EPOCH_DISPLAY = ("Name,Designer,Chip type,Start date,End date,Number of units (median),Number of units (5th percentile),"
                 "Number of units (95th percentile),H100e (median),Power (MW) (median),Incomplete,Source,Notes\n"
                 "Nvidia B300 Q1 2026,Nvidia,B300,2026-01-01,2026-03-31,\"992,874\",841132,1166625,2508525,1390.0,False,,"
                 "Generated on 2026-11-30 10:00\n"
                 "Nvidia B300 Q2 2026,Nvidia,B300,2026-04-01,2026-06-30,1400000,1200000,1600000,3500000,1900.5,True,,"
                 "Generated on 2026-11-30 10:00\n")


def test_epoch_zip_with_display_names_parses(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("quarterly_by_chip.csv", EPOCH_DISPLAY)
        archive.writestr("cumulative_by_chip.csv", "ignored")
    parsed = parse("epoch", {"ai_chip_sales.zip": buffer.getvalue()})
    assert parsed.as_of == dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.timezone.utc)
    rows = parsed.frame.sort("start_date").to_dicts()
    assert rows[0]["units_med"] == 992874 and rows[0]["incomplete"] is False and rows[1]["incomplete"] is True
    # Airtable's checkbox export: "checked" or empty
    checked = EPOCH_DISPLAY.replace(",False,,", ",,,").replace(",True,,", ",checked,,")
    assert parse("epoch", {"q.csv": checked.encode()}).frame.sort("start_date")["incomplete"].to_list() == [False, True]
    bad = EPOCH_DISPLAY.replace("Chip type", "Chip")
    with pytest.raises(FeedError, match=r"missing column\(s\) \['Chip type'\]"):
        parse("epoch", {"q.csv": bad.encode()})
    with pytest.raises(FeedError, match=r"line 3, column 'start_date'.*'2026-13-01'"):
        parse("epoch", {"q.csv": EPOCH_DISPLAY.replace("2026-04-01", "2026-13-01").encode()})


def test_mlperf_and_inferencex_formats(tmp_path):
    result = {"ID": "5.1-0001", "Submitter": "AMD", "Availability": "available", "Category": "closed",
              "Suite": "datacenter", "System": "S", "Platform": "8xMI300X", "Model": "llama2-70b-99",
              "Scenario": "Offline", "Accelerator": "AMD Instinct MI300X 192GB HBM3", "a#": 8, "Nodes": 1,
              "version": "v5.1", "weight_data_types": "fp8", "Performance_Result": 27803.9,
              "Performance_Units": "Tokens/s", "Location": "closed/AMD/results/8xMI300X/llama2-70b-99/Offline"}
    parsed = parse("mlperf", {"summary_results.json": json.dumps([result]).encode()})
    assert parsed.as_of.date() == dt.date(2025, 9, 9)
    assert parsed.frame.row(0, named=True)["accelerators_per_node"] == 8
    with pytest.raises(FeedError, match=r"field '\$\[0\]\.Performance_Result' value 'n/a' is not a valid number"):
        parse("mlperf", {"s.json": json.dumps([result | {"Performance_Result": "n/a"}]).encode()})
    row = {"hardware": "h200", "framework": "trt", "model": "dsr1", "precision": "fp8", "isl": 8192, "osl": 1024,
           "conc": 64, "date": "2026-11-30", "metrics": {"tput_per_gpu": 450.5, "median_intvty": 12.5}}
    parsed = parse("inferencex", {"b.json": json.dumps([row]).encode()})
    assert parsed.frame.row(0, named=True)["tput_per_gpu"] == 450.5
    assert parsed.as_of.date() == dt.date(2026, 11, 30)
    with pytest.raises(FeedError, match=r"field 'data\[0\]\.metrics' missing or not an object"):
        parse("inferencex", {"b.json": json.dumps([{k: v for k, v in row.items() if k != "metrics"}]).encode()})
    # the metrics beside the other fields (the API's hot columns), wrapped in {"data": [...]}
    flat = {k: v for k, v in row.items() if k != "metrics"} | row["metrics"]
    assert parse("inferencex", {"b.json": json.dumps({"data": [flat]}).encode()}).frame["tput_per_gpu"][0] == 450.5


def test_compare_counts_new_restated_and_vanished():
    old = pl.DataFrame({"day": [dt.date(2026, 1, d) for d in (1, 2, 3)], "model_permaslug": ["a", "a", "a"],
                        "total_tokens": [1.0, 2.0, 3.0]})
    new = pl.DataFrame({"day": [dt.date(2026, 1, d) for d in (1, 3, 4)], "model_permaslug": ["a", "a", "a"],
                        "total_tokens": [1.0, 3.3, 4.0]})
    frame, counts = compare("openrouter", old, new, "v1", "v2")
    assert (counts.rows, counts.new, counts.restated, counts.vanished) == (3, 1, 1, 1)
    restated = frame.filter(pl.col("change") == "restated").row(0, named=True)
    assert restated["relative_change"] == pytest.approx(0.1)
    # outside the later vintage's days, an absent day is not 'vanished' (a partial window)
    _, counts = compare("openrouter", old, new.filter(pl.col("day") > dt.date(2026, 1, 2)))
    assert counts.vanished == 0


def test_cli_payload_offline_and_malformed(tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("T2C_DATA_DIR", str(data))
    monkeypatch.setenv("T2C_WAREHOUSE", str(tmp_path / "w.duckdb"))
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_bytes(rankings(WEEK, "2026-11-23T02:00:00Z"))
    changed = {day: dict(models) for day, models in WEEK.items()}
    changed["2026-11-17"]["deepseek/deepseek-v4"] = 1234
    second.write_bytes(rankings(changed, "2026-11-24T02:00:00Z"))
    assert main(["refresh", "--source", "openrouter", "--payload", str(first)]) == 0
    assert "openrouter: 21 rows, 21 new, 0 restated, as_of 2026-11-23T02:00:00+00:00" in capsys.readouterr().out
    assert main(["refresh", "--source", "openrouter", "--payload", str(second)]) == 0
    assert "openrouter: 21 rows, 0 new, 1 restated" in capsys.readouterr().out
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("select key, old_value, new_value from marts.source_revisions").fetchall() == [
        ("2026-11-17 | deepseek/deepseek-v4", 917.0, 1234.0)]
    con.close()
    before = snapshot_files(data)
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [{"date": "2026-11-30", "model_permaslug": "a"}], "meta": {"as_of": "2026-12-01T00:00:00Z"}}')
    assert main(["refresh", "--source", "openrouter", "--payload", str(broken)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: openrouter: field 'data[0].total_tokens' missing; the item has ['date', 'model_permaslug']"]
    assert main(["refresh", "--offline"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("refresh: offline: nothing fetched, nothing changed")
    monkeypatch.setenv("T2C_FEED_OPENROUTER_URL", "http://feeds.invalid")
    monkeypatch.setenv("OPENROUTER_API_KEY", "k")
    for source in ("epoch", "mlperf", "inferencex"):
        monkeypatch.setenv(f"T2C_FEED_{source.upper()}_URL", "http://feeds.invalid/x")
    assert main(["refresh"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("refresh: no network")
    assert snapshot_files(data) == before
    assert main(["refresh", "--payload", str(first)]) == 2
