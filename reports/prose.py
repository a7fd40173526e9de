"""The report's sentences from its numbers: the executive summary, the note tying the Nvidia figures, check
names in words, and the small formatters the sentences and tables share (Markdown escaping included)."""

from __future__ import annotations

import datetime as dt
import re
import polars as pl
from reports.format import month_label, pct, plain, power_mw, quarter_label, short, tokens_per_day, usd, words
from reports.metrics import headline_scenario


def pct_or_na(value) -> str:
    return "n/a" if value is None else pct(value)


def summary_sentences(numbers: dict, frames: dict[str, pl.DataFrame], supply: dict, defs: dict, cross_flags: list[str],
             moved: list[dict], comparison: str, horizon, compared: bool = False) -> list[str]:
    """The executive summary: 3-6 sentences generated from the numbers."""
    headline = headline_scenario(frames)
    out = []
    g_now, g_end = numbers["global_now"], numbers["global_horizon"]
    last = numbers.get("last_disclosure")
    basis = f"a forecast: the latest disclosure is from {month_label(dt.date.fromisoformat(last))}" if last else "a forecast"
    sentence = (f"Disclosed global inference demand is about {tokens_per_day(g_now['value'])} in "
                f"{month_label(dt.date.fromisoformat(g_now['period']))} ({basis}; 80% band {words(g_now['lo80'])} to "
                f"{words(g_now['hi80'])}) and is forecast at {tokens_per_day(g_end['value'])} by "
                f"{month_label(dt.date.fromisoformat(g_end['period']))} (80% band {words(g_end['lo80'])} to "
                f"{words(g_end['hi80'])})")
    if numbers.get("estimated_horizon"):
        sentence += (f"; adding platforms that publish no token counts (estimated from revenue) gives "
                     f"{words(numbers['estimated_horizon'])} tokens/day")
    out.append(sentence + ".")
    scen = numbers.get("scenarios") or {}
    if headline in scen:
        v = scen[headline]
        d = defs.get(headline, {})
        label = d.get("label") or headline
        what = f" ({d['summary'].rstrip('.')})" if d.get("summary") else ""
        text = (f"In the headline scenario, {label}{what}, the installed base (Epoch AI's shipments, projected, less "
                f"retirements) serves {pct_or_na(v.get('served_by_installed_share_median'))} of that demand in "
                f"{quarter_label(horizon)} at {pct_or_na(v.get('installed_utilisation_median'))} utilisation of its "
                f"inference share ({short(v.get('installed_inference_chips_median') or 0.0)} chips), and "
                f"{short(v.get('bought_chips_median') or 0.0)} more chips ({usd(v.get('bought_capex_usd_median') or 0.0)}) "
                f"must be bought in the quarter beyond the projected shipments; the fleet serving demand is "
                f"{short(v['h100e_median'])} H100-equivalents ({short(v['chips_median'])} chips, "
                f"{power_mw(v['power_mw_median'])}, {usd(v['capex_usd_median'])} of chips)")
        if (v.get("shortfall_tokens_per_day_median") or 0.0) > 0:
            text += f"; {tokens_per_day(v['shortfall_tokens_per_day_median'])} no available chip can serve"
        if len(scen) > 1:
            lo = min(scen, key=lambda k: scen[k]["chips_median"])
            hi = max(scen, key=lambda k: scen[k]["chips_median"])
            text += (f"; across the {len(scen)} scenarios the chip count runs from {short(scen[lo]['chips_median'])} "
                     f"({defs.get(lo, {}).get('label') or lo}) to {short(scen[hi]['chips_median'])} "
                     f"({defs.get(hi, {}).get('label') or hi})")
        out.append(text + ".")
    rows = supply.get("binding_rows") or []
    if rows:
        last_year = max(r["year"] for r in rows)
        parts = [f"{r['resource']}{'' if r['region'] == 'china' else ' outside China'} "
                 f"(required {r['ratio']}x {'the stock' if 'stock' in r['resource'] else 'capacity'})"
                 for r in rows if r["year"] == last_year]
        text = f"On the supply side the binding resources in {last_year} are " + " and ".join(parts)
        if supply.get("first_short"):
            text += "; short at the median: " + "; ".join(supply["first_short"])
        else:
            text += "; no resource is short at the median"
        out.append(text + ".")
    segs = frames["totals"].filter((pl.col("scenario") == headline) & (pl.col("period_start") == horizon)
                                   & (pl.col("segment") != "all"))
    if segs.height:
        parts = [f"{r['segment'].replace('_', ' ')} {pct_or_na(r['installed_utilisation_median'])} used"
                 + (f", {short(r['bought_chips_median'])} chips bought beyond the projected shipments"
                    if (r["bought_chips_median"] or 0) > 0 else "")
                 for r in segs.sort("segment").iter_rows(named=True)]
        out.append(f"By segment in {quarter_label(horizon)}, the installed base's inference share is "
                   + "; ".join(parts) + " (marts.fleet_totals; a region whose installed chips sit idle while another "
                   "buys more says the demand the fleet serves there is incomplete or the shipments go elsewhere).")
    if supply.get("gainers"):
        out.append(f"Who gains (inference purchases in {supply['flow_year']}, a flow): "
                   + "; ".join(supply["gainers"][:3]) + ".")
    if compared:
        change = ("Compared with the previous report of the same as-of date"
                  + ("." if moved else ": no headline number moved by more than the threshold."))
    else:
        change = comparison.split(";")[0].rstrip(".") + "."
    if moved:
        top = sorted(moved, key=lambda m: -abs(m["change"]))[:2]
        change += " Largest moves: " + "; ".join(f"{m['name']} {m['change'] * 100:+.0f}%" for m in top) + "."
    if cross_flags:
        names = sorted({f.rsplit(" 20", 1)[0] for f in cross_flags})
        change += (f" {len(cross_flags)} cross-check{'s' if len(cross_flags) > 1 else ''} of the headline scenario "
                   f"{'are' if len(cross_flags) > 1 else 'is'} outside tolerance ({'; '.join(names)}; section 4).")
    if change.strip():
        out.append(change.strip())
    return out


CHECK_NAMES = {"nvidia_spend_vs_data_center_revenue": "Nvidia inference spend vs data-center revenue",
               "cowos_wafers_vs_capacity": "CoWoS wafers vs capacity",
               "domestic_2_5d_spend_vs_packaging_revenue": "domestic 2.5D packaging vs SJ Semiconductor's revenue"}


def coinciding_scenarios(rows: list[dict], cells: tuple[str, ...]) -> str:
    """A sentence for the scenarios whose rows of the scenario table show the same figures in every one of
    `cells` (a reader would take the repeat for a slip), or "" when every row differs."""
    groups: dict[tuple, list[str]] = {}
    for row in rows:
        groups.setdefault(tuple(row[c] for c in cells), []).append(row["label"])
    return " ".join(
        f"{', '.join(labels[:-1])} and {labels[-1]} show the same figures: at the median they buy the same chips "
        "(the chips on which they differ are not bought at the median, the installed base serving that demand); "
        "their p5 and p95 are in marts.fleet_totals."
        for labels in groups.values() if len(labels) > 1)


def check_name(check: str) -> str:
    if check.startswith("hbm_share_vs_published/"):
        return f"{check.split('/', 1)[1]}'s HBM share vs published"
    return CHECK_NAMES.get(check, check.replace("_", " "))


def spend_note(frames: dict[str, pl.DataFrame], headline: str, year) -> str:
    """One sentence tying the three figures the report gives for Nvidia in a year (issue 29: $193 B, $275 B/yr
    and $324 B stood apart): full-price purchases (the cross-check), the designer's share of them (the flow)
    and the designer's share of the whole fleet (a stock)."""
    if year is None:
        return ""
    flows = frames["flows"].filter((pl.col("scenario") == headline) & (pl.col("year") == year)
                                   & (pl.col("supplier") == "Nvidia") & (pl.col("role") == "designer"))
    check = frames["cross_checks"].filter((pl.col("scenario") == headline) & (pl.col("year") == year)
                                          & (pl.col("check_name") == "nvidia_spend_vs_data_center_revenue"))
    if flows.height == 0 or check.height == 0:
        return ""
    flow, stock = flows["purchases_usd_median"][0], flows["fleet_content_usd_median"][0]
    spend = check["implied_median"][0]
    return (f"Three figures for Nvidia in {year} measure different things: {usd(spend)}/yr is what buyers pay for "
            f"the Nvidia chips the inference fleet adds that year (growth plus replacements, at the full chip price; "
            f"the cross-check against Nvidia's data-center revenue); {usd(flow)} of it is Nvidia's own share as "
            f"designer (data/supply_chain.csv; the rest pays the foundry, the HBM makers and packaging); "
            f"{usd(stock)} is Nvidia's designer share of the whole fleet's content, a stock built over years, not a "
            f"year's revenue.")


def num(value) -> str:
    return plain(value)


def fmt_unit(value, unit: str) -> str:
    if value is None:
        return "n/a"
    return usd(value) + "/yr" if unit == "usd_per_year" else f"{short(value)} {unit.replace('_', ' ')}"


def md_escape(value) -> str:
    """Text from data in Markdown, table-safe and inert without HTML entities: backslash escapes
    (CommonMark) for the characters that could start raw HTML, an entity or a cell break."""
    text = str(value).replace("\\", "\\\\").replace("<", "\\<").replace("|", "\\|").replace("\n", " ")
    return re.sub(r"&(?=#?\w+;)", r"\\&", text)
