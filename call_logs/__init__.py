"""Request-level call logs without Dagster: their config (config), the CSV / JSONL formats (csv_format,
generic) and the day-partition loader (loading)."""
