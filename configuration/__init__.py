"""The configuration: config/assumptions.yaml read, validated against its typed schema (schema) and
flattened into rows for meta.assumptions (assumptions)."""
