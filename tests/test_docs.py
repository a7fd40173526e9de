"""Documents generated from the code stay current."""

from pipelines.graph import graph_markdown
from tests.conftest import ROOT


def test_the_pipeline_graph_document_matches_the_definitions():
    from pipelines.definitions import defs

    text = graph_markdown(defs)
    assert (ROOT / "docs" / "pipeline_graph.md").read_text().strip() == text.strip(), \
        "docs/pipeline_graph.md is stale: regenerate it with `python -m pipelines.graph > docs/pipeline_graph.md`"
    # every SQL file and every Python mart appears, inputs before the assets that read them
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ") and "`" in line]
    position = {r[1].strip("` "): i for i, r in enumerate(rows)}
    for i, row in enumerate(rows):
        for read in row[3].split(", "):
            name = read.split(" (")[0].strip(" |")
            if name in position:
                assert position[name] < i, f"{row[1]} is listed before its input {name}"
    sql = {f"{p.parent.name}/{p.stem}" for p in (ROOT / "sql").glob("*/*.sql") if p.parent.name != "ddl"}
    assert sql <= set(position)
