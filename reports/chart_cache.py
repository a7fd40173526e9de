"""Charts rendered once per input: a chart whose inputs (frames, labels, title) and drawing code are unchanged
since the last report in the same reports directory is read back instead of drawn again. Drawing is most of a
report's time, and a what-if (`tokens2chips whatif`) or a re-rendered report leaves most charts' inputs alone
(the demand charts never depend on a hardware assumption).

The charts that must be drawn are drawn in parallel worker processes (`charts`; spawned, so that no lock
of the parent's threads is inherited), up to T2C_CHART_WORKERS (default: the CPUs, at most 4); one chart,
or T2C_CHART_WORKERS=1, draws in process.

The key is a SHA-256 of the pickled inputs and of the source of the modules that draw (reports/charts.py,
labels.py, format.py); anything that cannot be pickled is drawn without the cache. Entries live in
<reports_dir>/.chart-cache/ (desktop and phone PNG per chart); a report keeps only the entries it used."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pickle
import time
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path
from typing import Callable



class ChartPng(bytes):
    """PNG bytes of the desktop chart; `.narrow` holds the phone variant, `.seconds` the time drawing both took
    (0 when read back)."""
    narrow: bytes
    seconds: float = 0.0


def resolve(draw: str | Callable[..., ChartPng]) -> Callable[..., ChartPng]:
    """A drawing function, or the name of one in reports.charts (imported only where a chart is drawn: the
    parent of the drawing workers never loads matplotlib)."""
    if callable(draw):
        return draw
    import importlib

    return getattr(importlib.import_module("reports.charts"), draw)

DRAWING_MODULES = ("charts.py", "labels.py", "format.py")
SECONDS_FILE = "draw-seconds.json"  # in the cache directory: each chart's last drawing time, to order the next


@cache
def _code_version() -> bytes:
    here = Path(__file__).resolve().parent
    return hashlib.sha256(b"".join((here / name).read_bytes() for name in DRAWING_MODULES)).digest()


class ChartCache:
    def __init__(self, directory: Path | None):
        self.directory = Path(directory) if directory else None
        self.used: set[str] = set()

    def chart(self, name: str, draw: str | Callable[..., ChartPng], *args) -> ChartPng:
        return self.charts({name: (draw, *args)})[name]

    def charts(self, jobs: dict[str, tuple]) -> dict[str, ChartPng]:
        """{name: (draw, *args)} -> {name: PNG}, `draw` a function or the name of one in reports.charts: each
        read back when its key is cached, else drawn (the misses in parallel worker processes when there are
        several) and stored."""
        return self.submit(jobs)()

    def submit(self, jobs: dict[str, tuple]) -> Callable[[], dict[str, ChartPng]]:
        """`charts`, in two halves: the misses go to the drawing workers now, and the returned function waits
        for them (the caller does its own work, such as compiling templates, while the workers draw)."""
        out, todo = {}, {}
        for name, (draw, *args) in jobs.items():
            entry = self._entry(name, draw, args)
            if entry is not None and entry[0].is_file() and entry[1].is_file():
                out[name] = _png(entry[0].read_bytes(), entry[1].read_bytes())
            else:
                todo[name] = (entry, draw, args)
        seconds = self._seconds()
        # the longest first (by their last draw; new charts before all): with two workers, the last chart to
        # finish is then a short one
        order = sorted(todo, key=lambda n: -seconds.get(n, float("inf")))
        drawn = _draw_all({n: todo[n][1:] for n in order})

        def result() -> dict[str, ChartPng]:
            for name, png in drawn().items():
                out[name] = png
                if todo[name][0] is not None:
                    self._store(*todo[name][0], png)
                seconds[name] = png.seconds
            self._keep_seconds(seconds)
            return {name: out[name] for name in jobs}

        return result

    def _entry(self, name: str, draw: str | Callable, args: tuple) -> tuple[Path, Path] | None:
        """(desktop, narrow) paths of the chart's cache entry; None without a cache or for unpicklable inputs."""
        if self.directory is None:
            return None
        try:
            key = hashlib.sha256(_code_version() + pickle.dumps((name, draw if isinstance(draw, str) else getattr(draw, "__name__", ""),
                                                                 tuple(args)))
                                 ).hexdigest()
        except (pickle.PicklingError, TypeError, AttributeError):
            return None
        stem = f"{name}-{key[:32]}"
        desktop, narrow = self.directory / f"{stem}.png", self.directory / f"{stem}.narrow.png"
        self.used.update({desktop.name, narrow.name})
        return desktop, narrow

    def _seconds(self) -> dict[str, float]:
        """Each chart's seconds at its last draw in this reports directory (SECONDS_FILE)."""
        if self.directory is None:
            return {}
        try:
            found = json.loads((self.directory / SECONDS_FILE).read_text())
            return {k: float(v) for k, v in found.items()} if isinstance(found, dict) else {}
        except (TypeError, OSError, ValueError):
            return {}

    def _keep_seconds(self, seconds: dict[str, float]) -> None:
        if self.directory is None:
            return
        self.used.add(SECONDS_FILE)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / f".{SECONDS_FILE}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(seconds, sort_keys=True))
            os.replace(tmp, self.directory / SECONDS_FILE)
        except OSError:
            pass  # an order hint: without it the charts are drawn in the report's order

    def _store(self, desktop: Path, narrow: Path, png: ChartPng) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for path, data in ((narrow, getattr(png, "narrow", bytes(png))), (desktop, bytes(png))):
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # the desktop file last: its presence means both are whole

    def prune(self) -> None:
        """Drop the entries this report did not use."""
        if self.directory is None or not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if path.name not in self.used:
                path.unlink(missing_ok=True)


def chart_workers() -> int:
    """Worker processes for drawing: T2C_CHART_WORKERS, else the CPUs (at most 4)."""
    text = os.environ.get("T2C_CHART_WORKERS", "").strip()
    if text:
        try:
            return max(1, int(text))
        except ValueError:
            raise ValueError(f"T2C_CHART_WORKERS={text!r}: expected a whole number of worker processes") from None
    return max(1, min(4, os.cpu_count() or 1))


def _draw_one(draw: str | Callable[..., ChartPng], args: tuple) -> tuple[bytes, bytes, float]:
    started = time.perf_counter()
    png = resolve(draw)(*args)
    return bytes(png), getattr(png, "narrow", bytes(png)), time.perf_counter() - started


_STARTED: ProcessPoolExecutor | None = None  # workers started ahead of the report (start_workers)
_KEPT = False  # start_workers(keep=True): the workers serve every report of this process (a what-if loop)


def _ready() -> bool:
    import reports.charts  # noqa: F401  (the drawing code and matplotlib, loaded ahead of the first chart)

    return True


def start_workers(keep: bool = False) -> None:
    """Start the drawing workers now, so that they load matplotlib and the drawing code while the caller does
    other work (a what-if starts them before the fleet model runs on the other core). The next report in
    this process draws on them; with `keep`, every report of the process does (`stop_workers` ends them)."""
    global _STARTED, _KEPT
    workers = chart_workers()
    if _STARTED is None and workers > 1:
        _STARTED = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        for _ in range(workers):
            _STARTED.submit(_ready)
    _KEPT = keep and _STARTED is not None


def stop_workers() -> None:
    """End the workers start_workers started (kept or not yet used)."""
    global _STARTED, _KEPT
    if _STARTED is not None:
        _STARTED.shutdown(cancel_futures=True)
    _STARTED, _KEPT = None, False


def _draw_all(jobs: dict[str, tuple[str | Callable, tuple]]) -> Callable[[], dict[str, ChartPng]]:
    """Start drawing every job (several in worker processes, each taking the next chart as it finishes one);
    the returned function waits for the PNGs. One job, or one worker, draws in process when asked."""
    global _STARTED
    workers = min(chart_workers(), len(jobs))

    def here() -> dict[str, ChartPng]:
        return {name: _png(*_draw_one(draw, args)) for name, (draw, args) in jobs.items()}

    if workers <= 1:
        return here
    kept = _KEPT and _STARTED is not None
    pool = _STARTED if kept else None
    if not kept:
        pool, _STARTED = _STARTED, None
        pool = pool or ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def done() -> None:
        if not kept:
            pool.shutdown()

    try:
        futures = {name: pool.submit(_draw_one, draw, args) for name, (draw, args) in jobs.items()}
    except (pickle.PicklingError, TypeError, AttributeError):  # a draw function that cannot cross processes
        if not kept:
            pool.shutdown(cancel_futures=True)
        return here

    def wait() -> dict[str, ChartPng]:
        try:
            return {name: _png(*f.result()) for name, f in futures.items()}
        except (pickle.PicklingError, TypeError, AttributeError):
            return here()
        finally:
            done()

    return wait


def _png(desktop: bytes, narrow: bytes, seconds: float = 0.0) -> ChartPng:
    png = ChartPng(desktop)
    png.narrow = narrow
    png.seconds = seconds
    return png
