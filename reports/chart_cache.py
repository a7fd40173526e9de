"""Charts rendered once per input: a chart whose inputs (frames, labels, title) and drawing code are unchanged
since the last report in the same reports directory is read back instead of drawn again. Drawing is most of a
report's time, and a what-if (`tokens2chips whatif`) or a re-rendered report leaves most charts' inputs alone
(the demand charts never depend on a hardware assumption).

The key is a SHA-256 of the pickled inputs and of the source of the modules that draw (reports/charts.py,
labels.py, format.py); anything that cannot be pickled is drawn without the cache. Entries live in
<reports_dir>/.chart-cache/ (desktop and phone PNG per chart); a report keeps only the entries it used."""

from __future__ import annotations

import hashlib
import os
import pickle
from functools import cache
from pathlib import Path
from typing import Callable

from reports.charts import ChartPng

DRAWING_MODULES = ("charts.py", "labels.py", "format.py")


@cache
def _code_version() -> bytes:
    here = Path(__file__).resolve().parent
    return hashlib.sha256(b"".join((here / name).read_bytes() for name in DRAWING_MODULES)).digest()


class ChartCache:
    def __init__(self, directory: Path | None):
        self.directory = Path(directory) if directory else None
        self.used: set[str] = set()
        self.hits = 0

    def chart(self, name: str, draw: Callable[..., ChartPng], *args) -> ChartPng:
        if self.directory is None:
            return draw(*args)
        try:
            key = hashlib.sha256(_code_version() + pickle.dumps((name, getattr(draw, "__name__", ""), args))).hexdigest()
        except (pickle.PicklingError, TypeError, AttributeError):
            return draw(*args)
        stem = f"{name}-{key[:32]}"
        desktop, narrow = self.directory / f"{stem}.png", self.directory / f"{stem}.narrow.png"
        self.used.update({desktop.name, narrow.name})
        if desktop.is_file() and narrow.is_file():
            out = ChartPng(desktop.read_bytes())
            out.narrow = narrow.read_bytes()
            self.hits += 1
            return out
        out = draw(*args)
        self.directory.mkdir(parents=True, exist_ok=True)
        for path, data in ((narrow, getattr(out, "narrow", bytes(out))), (desktop, bytes(out))):
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # the desktop file last: its presence means both are whole
        return out

    def prune(self) -> None:
        """Drop the entries this report did not use."""
        if self.directory is None or not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if path.name not in self.used:
                path.unlink(missing_ok=True)
