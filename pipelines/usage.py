"""Command-line usage errors: one `error:` line and exit status 2, whatever the command."""

from __future__ import annotations

import argparse
import re
import sys


class UsageError(ValueError):
    """A bad argument: the CLI prints `error: <message>` and exits 2, changing nothing."""


class OneLineParser(argparse.ArgumentParser):
    """argparse errors as one `error:` line (no usage block), exit status 2; subparsers inherit the class."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        sys.stderr.write(f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def join_negative_numbers(argv: list[str]) -> list[str]:
    """`--opt -1e9` -> `--opt=-1e9`: argparse takes a value starting with '-' for an option unless it looks
    like a plain negative number, so scientific notation (-1e9) was 'expected one argument'."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if (token.startswith("--") and "=" not in token and i + 1 < len(argv) and _NUMBER.match(argv[i + 1])):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out
