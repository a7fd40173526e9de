"""Warehouse I/O without Dagster: the DuckDB connection, atomic table replacement and publish (io),
the input-file contracts (sources) and loading by contract (loading)."""
