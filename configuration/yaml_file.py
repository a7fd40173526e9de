"""Reading a YAML configuration file: the one place the project parses YAML it is configured by
(config/assumptions.yaml, config/call_logs.yaml, sql/contracts.yaml)."""

from __future__ import annotations

from pathlib import Path

import yaml

# libyaml's loader where PyYAML was built with it (5-10x faster than the pure-Python one), the same safe subset
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_mapping(path: Path, error: type[Exception]) -> tuple[dict, str]:
    """The file's top-level mapping and its text, or `error` naming the file (and line and column of a
    YAML syntax error)."""
    if not path.is_file():
        raise error(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{path}{where}: not valid YAML: {problem}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping of sections at the top level")
    return data, text
