"""Report charts (matplotlib, Agg): each function takes polars frames and returns PNG bytes.

Every chart has a title, units on its axes and a source line. Each PNG also carries a narrow variant
(`.narrow`: the panels stacked in one column, about 600 px wide) that the HTML serves to phones.
"""

from __future__ import annotations

import datetime as dt
import io
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator  # noqa: E402

from reports.chart_cache import ChartPng  # noqa: E402
from reports.format import short  # noqa: E402
from reports.labels import Labels  # noqa: E402

CLASS_COLORS = {"gpu": "#4C72B0", "tpu": "#55A868", "asic": "#8172B2", "domestic_asic": "#C44E52",
                "lpu": "#DD8452", "wafer_scale": "#937860", "cpu": "#8C8C8C"}
plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "figure.dpi": 110})


NARROW_WIDTH_IN = 5.6


def fit(fig, note_in: float = 0.3) -> None:
    """tight_layout inside the band the source note (bottom) and the figure title (top) leave free, both in
    inches: as a fraction of the height, a fixed band was too thin on a tall phone figure, whose title then
    sat on the first panel and its legend."""
    height = fig.get_size_inches()[1]
    title_in = 0.0
    if fig._suptitle is not None:
        # the title's extent, measured without drawing the figure (narrow_layout wraps it by hand)
        title_in = fig._suptitle.get_window_extent(fig.canvas.get_renderer()).height / fig.dpi + 0.15
        fig._suptitle.set_y(1 - 0.05 / height)
        fig._suptitle.set_va("top")
    fig.tight_layout(rect=(0, min(0.3, note_in / height), 1, 1 - min(0.3, title_in / height)))


# zlib level 3, not Pillow's 6: the report's charts come out no larger (2.58 vs 2.59 MB over 22 PNGs) and
# are encoded in 70% of the time (measured 2026-12-04 on the what-if report's charts)
PNG_OPTIONS = {"compress_level": 3}


def _save(fig) -> bytes:
    """The figure as PNG. tight_layout leaves a placeholder layout engine on the figure, which makes savefig
    draw the whole figure once without rendering before it draws it again to render; the layout is fixed by
    then, so the engine is dropped (same pixels, a third of a chart's time)."""
    fig.set_layout_engine(None)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", pil_kwargs=PNG_OPTIONS)
    return buf.getvalue()


def _png(fig, source: str) -> ChartPng:
    note = fig.text(0.01, 0.005, source, fontsize=7, color="#555555", ha="left", va="bottom")
    fit(fig)
    out = ChartPng(_save(fig))
    narrow_layout(fig, note)
    out.narrow = _save(fig)
    plt.close(fig)
    return out


def narrow_layout(fig, note=None) -> None:
    """The phone variant: the visible panels stacked in one column at a width a phone shows near 1:1, text
    wrapped, the title kept above the first panel."""
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison and ax.get_subplotspec() is not None]
    width, height = fig.get_size_inches()
    rows = max(1, ax_rows(fig, panels))
    if len(panels) > 1 and rows < len(panels):
        grid = fig.add_gridspec(len(panels), 1)
        for i, ax in enumerate(panels):
            ax.set_subplotspec(grid[i, 0])
            # side by side, panels sharing a y-axis label only the first; stacked, each needs its own
            ax.tick_params(labelleft=True)
        panel_h = max(2.4, height / rows)
        fig.set_size_inches(NARROW_WIDTH_IN, panel_h * len(panels) + 0.6)
    else:
        fig.set_size_inches(NARROW_WIDTH_IN, max(2.6, height * NARROW_WIDTH_IN / width * 1.35))
    for ax in list(fig.axes):
        if ax not in panels and ax.get_subplotspec() is not None:
            fig.delaxes(ax)
    if note is not None:
        note.set_wrap(True)
    fig.tight_layout()  # the panels' phone positions, to measure them
    for ax in panels:
        # a panel's title and axis label are centred on the panel, which long tick labels push right: wrapped
        # to what the panel's own width holds (about 6.5 points a character), they stay inside the figure
        chars = max(20, int(ax.get_position().width * NARROW_WIDTH_IN * 72 / 6.5))
        ax.set_title(textwrap.fill(ax.get_title(), chars))
        ax.set_xlabel(textwrap.fill(ax.get_xlabel(), chars))
    if fig._suptitle is not None:
        # wrapped here rather than at draw time (set_wrap), so that fit measures it without a draw
        size = fig._suptitle.get_fontsize()
        fig._suptitle.set_text(textwrap.fill(fig._suptitle.get_text().replace("\n", " "),
                                             int(NARROW_WIDTH_IN * 72 / (0.62 * size))))
    fit(fig, note_in=0.45)


def ax_rows(fig, panels) -> int:
    """Rows of the figure's panel grid."""
    rows = {ax.get_subplotspec().rowspan.start for ax in panels}
    return len(rows)


_SHORT_FMT = FuncFormatter(lambda v, _: short(v, 2))


def _log(axis) -> None:
    """A log scale without minor ticks: over many decades they are dozens of artists per panel, unlabelled,
    and most of a chart's drawing time."""
    ax = axis.axes
    (ax.set_yscale if axis is ax.yaxis else ax.set_xscale)("log")
    axis.set_minor_locator(NullLocator())


def value_axis(axis, lo: float, hi: float, ticks: int = 5) -> None:
    """A value axis from lo to hi that shows several labelled ticks: logarithmic only when the range spans
    more than a decade and a half (a log axis inside one decade showed one tick); linear otherwise."""
    if lo > 0 and hi / lo > 30:
        _log(axis)
    else:
        axis.set_major_locator(MaxNLocator(ticks))
    axis.set_major_formatter(_SHORT_FMT)


def _month_starts(lo: float, hi: float, months: tuple[int, ...]) -> list[float]:
    """Matplotlib date numbers of the first days of `months` between `lo` and `hi` (date numbers)."""
    years = range(mdates.num2date(lo).year, mdates.num2date(hi).year + 1)
    ticks = mdates.date2num([dt.datetime(y, m, 1) for y in years for m in months])
    return [t for t in ticks if lo <= t <= hi]


def _dates(ax) -> None:
    """Date ticks that do not run into each other, even in a narrow panel: yearly ticks over more than
    two years, half-yearly over one to two, quarterly below (called after the data are plotted). The ticks
    are fixed once from the axis range: a date locator recomputes its rule at every draw and layout pass."""
    lo, hi = ax.get_xlim()
    span_days = hi - lo
    quarters = (1, 4, 7, 10)
    if span_days > 2 * 365:
        major, fmt = _month_starts(lo, hi, (1,)), mdates.DateFormatter("%Y")
    elif span_days > 365:
        major, fmt = _month_starts(lo, hi, (1, 7)), mdates.DateFormatter("%b %Y")
    else:
        major, fmt = _month_starts(lo, hi, quarters), mdates.DateFormatter("%b %Y")
    ax.xaxis.set_major_locator(FixedLocator(major))
    ax.xaxis.set_major_formatter(fmt)
    # quarter marks between labelled ticks only where they stay few (each tick is several artists)
    ax.xaxis.set_minor_locator(FixedLocator(_month_starts(lo, hi, quarters)) if span_days <= 4 * 365
                               else NullLocator())
    ax.xaxis.set_minor_formatter(mdates.DateFormatter(""))


def demand_fan(forecast: pl.DataFrame, series: list[str], title: str, labels: Labels = Labels()) -> bytes:
    """Observed points and forecast median with 80/95% bands, log scale, one panel per series."""
    n = len(series)
    cols = 3
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.9 * rows), squeeze=False)
    for ax, sid in zip(axes.flat, series):
        part = forecast.filter(pl.col("series_id") == sid).sort("period_start")
        obs = part.filter(~pl.col("is_forecast"))
        fut = part.filter(pl.col("is_forecast"))
        if fut.height:
            x = fut["period_start"].to_list()
            ax.fill_between(x, fut["lo95"], fut["hi95"], color="#4C72B0", alpha=0.15, label="95%")
            ax.fill_between(x, fut["lo80"], fut["hi80"], color="#4C72B0", alpha=0.3, label="80%")
            ax.plot(x, fut["value"], color="#4C72B0", lw=1.5, label="median")
        if obs.height:
            ax.plot(obs["period_start"].to_list(), obs["value"], "o", color="black", ms=3.5, label="disclosed")
        _log(ax.yaxis)
        ax.set_title(labels.series(sid))
        ax.set_ylabel("tokens/day (log)")
        ax.yaxis.set_major_formatter(_SHORT_FMT)
        _dates(ax)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    return _png(fig, "Source: platform disclosures (data/SOURCES.md); forecast: tokens2chips (marts.forecast)")


def origin_share(weekly: pl.DataFrame, labels: Labels = Labels()) -> bytes:
    """Share of OpenRouter top-model tokens by model origin, per week."""
    totals = weekly.group_by("week_start", "origin").agg(pl.col("total_tokens").sum())
    share = totals.with_columns((pl.col("total_tokens") / pl.col("total_tokens").sum().over("week_start"))
                                .alias("share")).sort("week_start")
    fig, ax = plt.subplots(figsize=(10, 3.2))
    # an origin absent from a snapshot's top 10 has a 0% share that week; weeks without a snapshot are gaps
    weeks = pl.DataFrame({"week_start": sorted(share["week_start"].unique().to_list())},
                         schema={"week_start": share.schema["week_start"]})
    for origin, color in (("cn", "#C44E52"), ("us", "#4C72B0"), ("eu", "#55A868"), ("unknown", "#8C8C8C")):
        part = share.filter(pl.col("origin") == origin)
        if part.height:
            full = weeks.join(part.select("week_start", "share"), on="week_start", how="left").fill_null(0.0)
            x, y = with_gaps(full["week_start"].to_list(), (full["share"] * 100).to_list(), max_days=10)
            ax.plot(x, y, label=labels.origin(origin), color=color, lw=1.5, marker=".", ms=3)
    ax.set_ylabel("% of weekly top-10 tokens")
    ax.set_title("OpenRouter: share of top-model tokens by model origin")
    _dates(ax)
    if ax.lines:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no OpenRouter snapshot in this data vintage", ha="center", va="center",
                transform=ax.transAxes)
    return _png(fig, "Source: OpenRouter weekly rankings snapshots (openrouter_weekly_top_models.csv); weeks without "
                     "a snapshot are left blank")


def with_gaps(x: list, y: list, max_days: int) -> tuple[list, list]:
    """Insert a break (NaN) wherever consecutive dates are more than `max_days` apart, so a line is not
    drawn across periods without data."""
    xs, ys = [], []
    for i, (xi, yi) in enumerate(zip(x, y)):
        if i and (xi - x[i - 1]).days > max_days:
            xs.append(x[i - 1] + (xi - x[i - 1]) / 2)
            ys.append(float("nan"))
        xs.append(xi)
        ys.append(yi)
    return xs, ys


def chips_by_class(hardware: pl.DataFrame, scenarios: list[str], labels: Labels = Labels()) -> bytes:
    """Stacked bars of chips needed by chip class over time, one panel per scenario."""
    # a class's chips are the sum of its chips' medians (not the median of the class total: draws are correlated)
    agg = hardware.group_by("scenario", "period_start", "chip_class").agg(
        pl.col("chips_median").sum().alias("chips_sum_of_medians"))
    # one y-scale for every panel, so that scenarios compare by eye
    fig, axes = plt.subplots(1, len(scenarios), figsize=(12, 3.4), squeeze=False, sharey=True)
    for ax, scen in zip(axes.flat, scenarios):
        # periods x classes, 0 where a class has no chips in a period
        table = agg.filter(pl.col("scenario") == scen).pivot(
            on="chip_class", index="period_start", values="chips_sum_of_medians").sort("period_start").fill_null(0.0)
        periods = table["period_start"].to_list()
        bottom = np.zeros(len(periods))
        for cls in sorted(c for c in table.columns if c != "period_start"):
            vals = table[cls].to_numpy().astype(float)
            ax.bar(range(len(periods)), vals, bottom=bottom, color=CLASS_COLORS.get(cls, "#999999"),
                   label=labels.chip_class(cls))
            bottom += vals
        ax.set_xticks(range(len(periods)), [f"{p.year}Q{(p.month - 1) // 3 + 1}" for p in periods], rotation=60,
                      fontsize=7)
        ax.set_title(labels.scenario(scen))
        ax.set_ylabel("chips (sum of medians)")
        ax.yaxis.set_major_formatter(_SHORT_FMT)
        ax.legend(fontsize=6)
    fig.suptitle("Chips needed by chip class and scenario")
    return _png(fig, "Source: tokens2chips hardware model (marts.hardware_demand)")


def required_vs_installed(gap: pl.DataFrame, scenario: str, labels: Labels = Labels()) -> bytes:
    """Required vs installed per region and per resource a phase consumes (prefill: 8-bit compute,
    decode: memory bandwidth), so the conclusion does not hang on one unit."""
    part = gap.filter((pl.col("scenario") == scenario) & pl.col("resource").is_in(["prefill_compute",
                                                                                   "decode_bandwidth"]))
    fig, axes = plt.subplots(2, 2, figsize=(11, 6))
    for row, resource in enumerate(("prefill_compute", "decode_bandwidth")):
        for col, region in enumerate(("rest", "china")):
            ax = axes[row][col]
            p = part.filter((pl.col("region") == region) & (pl.col("resource") == resource)).sort("period_start")
            x = p["period_start"].to_list()
            if p.height:
                ax.fill_between(x, p["required_p5"], p["required_p95"], alpha=0.2, color="#C44E52",
                                label="required p5-p95")
                ax.plot(x, p["required_median"], color="#C44E52", label="required (median)")
                ax.plot(x, p["installed_inference_median"], color="#4C72B0", ls="--",
                        label="installed base (observed, then projected) x inference share")
                _log(ax.yaxis)
                ax.set_ylabel(p["unit"][0] + " (log)", fontsize=7)
            ax.set_title(f"{'China market' if region == 'china' else 'Rest of world'}: {labels.resource(resource)}")
            ax.yaxis.set_major_formatter(_SHORT_FMT)
            _dates(ax)
            ax.legend(fontsize=6)
    fig.suptitle(f"Required vs installed, per resource the phase consumes ({labels.scenario(scenario)})")
    return _png(fig, "Data: Epoch AI (shipments, installed base); tokens2chips (marts.supply_demand_gap)")


def interactivity(curves: pl.DataFrame) -> bytes:
    """Decode tokens/s per chip against tokens/s per user, per model (one panel each), a line per chip."""
    models = curves.group_by("model_name").agg(pl.len()).sort("len", descending=True)["model_name"].head(4).to_list()
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(12, 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        part = curves.filter(pl.col("model_name") == model)
        for chip in sorted(part["chip"].unique().to_list()):
            p = part.filter(pl.col("chip") == chip).sort("tokens_per_s_per_user")
            ax.plot(p["tokens_per_s_per_user"], p["tokens_per_s_per_chip"], marker=".", ms=3, label=chip,
                    color=CLASS_COLORS.get(p["chip_class"][0]) if p["chip_class"][0] in ("lpu", "cpu") else None)
        _log(ax.xaxis)
        _log(ax.yaxis)
        ax.xaxis.set_major_formatter(_SHORT_FMT)
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xlabel("tokens/s per user (interactivity)")
        ax.set_ylabel("output tokens/s per chip")
        ax.set_title(model, fontsize=9)
        ax.yaxis.set_major_formatter(_SHORT_FMT)
        ax.legend(fontsize=6)
    fig.suptitle("Throughput vs interactivity (decode, calibrated serving model)")
    return _png(fig, "Source: tokens2chips serving model calibrated on data/throughput_measurements.csv "
                     "(marts.interactivity_curves)")


def phase_split(hardware: pl.DataFrame, period, labels: Labels = Labels()) -> bytes:
    part = hardware.filter(pl.col("period_start") == period).group_by("scenario", "phase").agg(
        pl.col("h100e_median").sum())
    scenarios = sorted(part["scenario"].unique().to_list())
    fig, ax = plt.subplots(figsize=(8, 3.2))
    bottom = np.zeros(len(scenarios))
    for phase, color in (("prefill", "#55A868"), ("decode", "#DD8452")):
        vals = [float(part.filter((pl.col("scenario") == s) & (pl.col("phase") == phase))["h100e_median"].sum())
                for s in scenarios]
        ax.bar([labels.scenario(s) for s in scenarios], vals, bottom=bottom, label=phase, color=color)
        bottom += np.array(vals)
    ax.set_ylabel("H100e (median)")
    ax.yaxis.set_major_formatter(_SHORT_FMT)
    ax.set_title(f"Prefill vs decode compute, {period}")
    ax.legend(fontsize=8)
    return _png(fig, "Source: tokens2chips hardware model (marts.hardware_demand)")


def classes_over_time(hardware: pl.DataFrame, scenario: str, labels: Labels = Labels()) -> bytes:
    """Chips and MW by chip class over time in one scenario (report.class_chart_scenario)."""
    part = hardware.filter(pl.col("scenario") == scenario).group_by("period_start", "chip_class").agg(
        pl.col("power_mw_median").sum().alias("power_mw_sum_of_medians"),
        pl.col("chips_median").sum().alias("chips_sum_of_medians")).sort("period_start")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    for ax, col, label in ((axes[0], "chips_sum_of_medians", "chips (sum of medians)"),
                           (axes[1], "power_mw_sum_of_medians", "MW (sum of medians)")):
        for cls in sorted(part["chip_class"].unique().to_list()):
            p = part.filter(pl.col("chip_class") == cls)
            ax.plot(p["period_start"].to_list(), p[col], label=labels.chip_class(cls), color=CLASS_COLORS.get(cls),
                    lw=1.5)
        _log(ax.yaxis)
        ax.set_ylabel(label + " (log)")
        ax.yaxis.set_major_formatter(_SHORT_FMT)
        _dates(ax)
        ax.legend(fontsize=7)
    fig.suptitle(f"{labels.scenario(scenario)}: chips and power by chip class")
    return _png(fig, "Source: tokens2chips hardware model (marts.hardware_demand)")


def supplier_bars(exposure: pl.DataFrame, top: int = 14) -> bytes:
    part = exposure.group_by("supplier", "role").agg(pl.col("usd_p5").sum(), pl.col("usd_median").sum(),
                                                      pl.col("usd_p95").sum()).sort("usd_median", descending=True)
    part = part.head(top).reverse()
    labels = [f"{s} ({r})" for s, r in part.select("supplier", "role").iter_rows()]
    med = part["usd_median"].to_numpy()
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(labels) + 1.2))
    ax.barh(labels, med, color="#4C72B0",
            xerr=[med - part["usd_p5"].to_numpy(), part["usd_p95"].to_numpy() - med], capsize=2,
            error_kw={"elinewidth": 0.8})
    _log(ax.xaxis)
    ax.set_xlabel("USD content of the required fleet (median, p5-p95 whiskers, log)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: "$" + short(v, 2)))
    ax.set_title("Supplier exposure by supplier and role")
    return _png(fig, "Source: tokens2chips (marts.supplier_exposure); price split: data/supply_chain.csv (assumption)")


def tornado(sensitivity: pl.DataFrame, scenario: str, top: int = 12, labels: Labels = Labels()) -> bytes:
    part = sensitivity.filter(pl.col("scenario") == scenario).sort("swing_chips", descending=True).head(top).reverse()
    base = float(part["chips_at_value"][0]) if part.height else 0.0
    fig, ax = plt.subplots(figsize=(10, 0.35 * part.height + 1.3))
    for i, row in enumerate(part.iter_rows(named=True)):
        lo, hi = row["chips_at_low"], row["chips_at_high"]
        ax.barh(i, lo - base, left=base, color="#55A868")
        ax.barh(i, hi - base, left=base, color="#C44E52")
    ax.set_yticks(range(part.height), [f"{labels.assumption(r['assumption'])} [{short(r['low_value'])}.."
                                       f"{short(r['high_value'])}]"
                                       for r in part.iter_rows(named=True)], fontsize=7)
    ax.axvline(base, color="black", lw=0.8)
    ends = [v for r in part.iter_rows(named=True) for v in (r["chips_at_low"], r["chips_at_high"]) if v] or [base or 1]
    lo, hi = min(ends + [base]), max(ends + [base])
    value_axis(ax.xaxis, lo, hi)
    log = ax.xaxis.get_scale() == "log"
    ax.set_xlabel("chips needed at the horizon (green: assumption at low end, red: at high end"
                  f"{'; log' if log else ''})")
    ax.set_title(f"Sensitivity of chips needed ({labels.scenario(scenario)})")
    return _png(fig, "Source: tokens2chips (marts.sensitivity); ranges: config/assumptions.yaml")


def demand_reconciliation(recon: pl.DataFrame, scenario: str, labels: Labels = Labels()) -> bytes:
    """Per segment: the demand counted (disclosed, then disclosed + estimated) against what the installed base's
    inference share can serve, with the band public statements support for a sold-out fleet (busy share)."""
    part = recon.filter(pl.col("scenario") == scenario)
    segments = sorted(part["segment"].unique().to_list())
    fig, axes = plt.subplots(1, max(1, len(segments)), figsize=(11, 3.8), squeeze=False)
    for ax, segment in zip(axes[0], segments):
        p = part.filter(pl.col("segment") == segment).sort("period_start")
        x = p["period_start"].to_list()
        cap = p["capacity_tokens_per_day_median"]
        ax.fill_between(x, cap * p["busy_share_low"], cap * p["busy_share_high"], alpha=0.18, color="#4C72B0",
                        label="installed inference capacity x busy share (sold-out range)")
        ax.plot(x, cap, color="#4C72B0", ls="--", label="installed inference capacity (full use)")
        ax.plot(x, p["disclosed_tokens_per_day"].fill_null(0.0), color="#8C8C8C", label="disclosed demand")
        ax.plot(x, p["demand_tokens_per_day_median"], color="#C44E52", label="disclosed + estimated (median)")
        _log(ax.yaxis)
        ax.yaxis.set_major_formatter(_SHORT_FMT)
        ax.set_ylabel("tokens/day (log)", fontsize=7)
        ax.set_title(labels.segment(segment))
        _dates(ax)
        ax.legend(fontsize=6)
    fig.suptitle(f"Demand counted vs what the installed base's inference share can serve "
                 f"({labels.scenario(scenario)})")
    return _png(fig, "Data: Epoch AI (installed base); tokens2chips (marts.demand_reconciliation)")
