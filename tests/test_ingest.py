"""Each source loads; each kind of bad input stops with file, line and column, leaving the old table intact."""

import pytest

from warehouse.loading import InputFileError, load_source
from warehouse.sources import SOURCES, SOURCES_BY_STEM


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.stem)
def test_each_source_loads(con, data_dir, source):
    path = data_dir / source.file_name
    rows = load_source(con, source, path)
    n_lines = sum(1 for _ in path.open(encoding="utf-8")) - 1
    assert rows == n_lines
    cols = [r[0] for r in con.execute(f"describe {source.table}").fetchall()]
    assert cols == [*source.columns, *source.optional, "_line", "_source_file", "_loaded_at"]
    assert con.execute(f"select count(distinct _source_file) from {source.table}").fetchone()[0] == 1


TOKENS = SOURCES_BY_STEM["token_volume_observations"]
HEADER = "observed_on,platform,segment,value,unit,basis,source_id,confidence,note\n"
GOOD = "2025-01-31,acme,all,5e12,tokens_per_day,average,src,high,\n"


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


BAD_CASES = {
    "missing_column": (HEADER.replace(",note", ""), GOOD.rstrip(",\n") + "\n", 1, "note", "missing column"),
    "extra_column": (HEADER.replace(",note", ",note,extra"), GOOD.rstrip("\n") + ",x\n", 1, "extra", "unexpected column"),
    "wrong_type": (HEADER, GOOD + "2025-02-28,acme,all,lots,tokens_per_day,average,src,high,\n", 3, "value", "not a valid DOUBLE"),
    "negative": (HEADER, GOOD + "2025-02-28,acme,all,-5,tokens_per_day,average,src,high,\n", 3, "value", "negative"),
    "unknown_unit": (HEADER, GOOD + "2025-02-28,acme,all,5,tokens_per_fortnight,average,src,high,\n", 3, "unit", "unknown value"),
    "unknown_basis": (HEADER, GOOD + "2025-02-28,acme,all,5,tokens_per_day,median,src,high,\n", 3, "basis", "unknown value"),
    "bad_date": (HEADER, GOOD + "31/02/2025,acme,all,5,tokens_per_day,average,src,high,\n", 3, "observed_on", "unparseable date"),
    "duplicate_key": (HEADER, GOOD + "2025-02-28,acme,all,5,tokens_per_day,average,src,high,\n" + GOOD, 4, "observed_on", "duplicate natural key"),
    "missing_required": (HEADER, GOOD + "2025-02-28,acme,all,,tokens_per_day,average,src,high,\n", 3, "value", "missing"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_names_file_line_column_and_keeps_table(con, tmp_path, case):
    good = _write(tmp_path / "good.csv", HEADER + GOOD)
    assert load_source(con, TOKENS, good) == 1
    before = con.execute("select * exclude (_loaded_at) from raw.token_volume_observations").fetchall()

    header, body, line, column, problem = BAD_CASES[case]
    bad = _write(tmp_path / "token_volume_observations.csv", header + body)
    with pytest.raises(InputFileError) as err:
        load_source(con, TOKENS, bad)
    message = str(err.value)
    assert str(bad) in message
    assert f"line {line}" in message
    assert f"column '{column}'" in message
    assert problem in message
    after = con.execute("select * exclude (_loaded_at) from raw.token_volume_observations").fetchall()
    assert after == before


def test_empty_file(con, tmp_path):
    path = _write(tmp_path / "t.csv", "")
    with pytest.raises(InputFileError, match="empty"):
        load_source(con, TOKENS, path)
    path = _write(tmp_path / "t.csv", HEADER)
    with pytest.raises(InputFileError, match=r"line 2: the file has a header but no data rows"):
        load_source(con, TOKENS, path)


def test_non_utf8_file_names_line_and_column(con, tmp_path):
    body = HEADER + GOOD + "2025-02-28,acme,all,5,tokens_per_day,average,src,high,caf\xe9\n"
    path = _write(tmp_path / "t.csv", body, encoding="latin-1")
    with pytest.raises(InputFileError) as err:
        load_source(con, TOKENS, path)
    assert "line 3" in str(err.value) and "column 'note'" in str(err.value) and "UTF-8" in str(err.value)


def test_missing_file(con, tmp_path):
    with pytest.raises(InputFileError, match="file not found"):
        load_source(con, TOKENS, tmp_path / "nope.csv")


def test_columns_in_another_order_load_by_name(con, tmp_path):
    cols = HEADER.strip().split(",")
    reordered = cols[::-1]
    values = dict(zip(cols, GOOD.rstrip("\n").split(",")))
    path = _write(tmp_path / "t.csv", ",".join(reordered) + "\n" + ",".join(values[c] for c in reordered) + "\n")
    load_source(con, TOKENS, path)
    assert con.execute("select platform, value from raw.token_volume_observations").fetchone() == ("acme", 5e12)


SHIPMENTS = SOURCES_BY_STEM["chip_shipments_quarterly"]


def test_unknown_shipment_chip_fails_at_ingest_with_the_closest_names(con, data_dir):
    path = data_dir / SHIPMENTS.file_name
    lines = path.read_bytes().split(b"\n")
    target = next(i for i, line in enumerate(lines) if b",A100," in line)
    lines[target] = lines[target].replace(b",A100,", b",A1OO,")
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(InputFileError) as err:
        load_source(con, SHIPMENTS, path)
    assert (err.value.line, err.value.column) == (target + 1, "chip")
    assert "'A1OO'" in str(err.value) and "accelerator_specs.csv" in str(err.value)
    assert "closest: " in str(err.value) and "A100" in str(err.value).split("closest: ")[1]


def test_crlf_file_keeps_the_bad_value_in_the_message(con, data_dir):
    path = data_dir / SHIPMENTS.file_name
    text = path.read_bytes().replace(b"\r\n", b"\n").decode()
    lines = text.split("\n")
    fields = lines[3].split(",")
    fields[4] = "lots"  # units_median
    lines[3] = ",".join(fields)
    path.write_bytes("\r\n".join(lines).encode())
    with pytest.raises(InputFileError) as err:
        load_source(con, SHIPMENTS, path)
    assert (err.value.line, err.value.column) == (4, "units_median")
    assert "value 'lots' is not a valid DOUBLE" in str(err.value)


def test_semicolon_file_gets_a_delimiter_hint(con, tmp_path):
    path = _write(tmp_path / "t.csv", HEADER.replace(",", ";") + GOOD.replace(",", ";"))
    with pytest.raises(InputFileError, match="delimited by ';'") as err:
        load_source(con, TOKENS, path)
    assert err.value.line == 1


def test_misspelt_header_names_the_expected_column(con, tmp_path):
    path = _write(tmp_path / "t.csv", HEADER.replace("platform", "platfrom") + GOOD)
    with pytest.raises(InputFileError, match="'platfrom' may be 'platform'") as err:
        load_source(con, TOKENS, path)
    assert (err.value.line, err.value.column) == (1, "platfrom")
