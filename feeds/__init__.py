"""Connectors to the public feeds (OpenRouter Data API, Epoch AI chip sales, MLPerf Inference results,
SemiAnalysis InferenceX): fetch over HTTP, keep every payload byte for byte with a manifest, parse a payload
into a typed frame, and compare vintages. Pure library: no Dagster, no DuckDB."""
