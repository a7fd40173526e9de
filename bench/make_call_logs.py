"""Generate realistic synthetic request-level call logs (for tests and benchmarks).

    python bench/make_call_logs.py --rows N --days D --out DIR [--format parquet|csv] [--start 2026-01-05]
                                   [--bad-fraction 0.0001] [--seed 7] [--flat]

Rows are built inside DuckDB (fast enough for 50 M rows) and written hive-partitioned by day
(`date=YYYY-MM-DD/part-0.parquet`), or as one flat file with --flat. Shape:
- timestamps follow a diurnal cycle (busy 09:00-22:00 UTC) and a weekly one (weekends at ~60%), with
  traffic growing ~1% a day;
- a few hundred models with Zipf-like popularity; the top ones are real provider slugs (so they map to
  the catalog), the tail are unknown `labNN/model-MMM` names;
- heavy-tailed prompt lengths (log-normal, median ~900 tokens), shorter completions, a cached share of
  prompts, reasoning tokens on reasoning models, ~97% successful requests;
- with --bad-fraction, some rows are broken on purpose: negative token counts, unknown status and, in
  CSV, unparseable timestamps and non-integer token counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import duckdb

KNOWN = [
    ("deepseek/deepseek-v3.2", "deepseek"), ("anthropic/claude-sonnet-4.5", "anthropic"),
    ("google/gemini-2.5-flash", "google-vertex"), ("openai/gpt-5", "openai"), ("minimax/minimax-m2", "minimax"),
    ("qwen/qwen3-235b-a22b-2507", "alibaba"), ("moonshotai/kimi-k2-0905", "moonshotai"),
    ("z-ai/glm-4.6", "z-ai"), ("openai/gpt-oss-120b", "groq"), ("meta-llama/llama-3.3-70b-instruct", "together"),
    ("deepseek/deepseek-r1-0528", "deepinfra"), ("x-ai/grok-code-fast-1", "xai"),
    ("anthropic/claude-opus-4.1", "anthropic"), ("google/gemini-2.5-pro", "google-ai-studio"),
    ("mistralai/mistral-nemo", "mistral"), ("openai/gpt-oss-20b", "fireworks"),
]
N_MODELS = 300
PROVIDERS = ["together", "fireworks", "deepinfra", "novita", "parasail", "baseten", "nebius", "chutes"]


def generate(rows: int, days: int, out: Path, fmt: str = "parquet", start: dt.date = dt.date(2026, 1, 5),
             bad_fraction: float = 0.0, seed: int = 7, flat: bool = False, threads: int | None = None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    if threads:
        con.execute(f"set threads = {int(threads)}")
    con.execute(f"select setseed({(seed % 1000) / 1000.0})")
    known = ", ".join(f"({i}, '{slug}', '{prov}')" for i, (slug, prov) in enumerate(KNOWN))
    providers = ", ".join(f"'{p}'" for p in PROVIDERS)
    con.execute(f"""
        create temp table models as
        select i as idx,
               coalesce(k.slug, 'lab' || lpad(cast(i % 40 as varchar), 2, '0') || '/model-' || lpad(cast(i as varchar), 3, '0')) as model,
               coalesce(k.provider, ([{providers}])[1 + i % {len(PROVIDERS)}]) as provider,
               i % 7 = 3 or coalesce(k.slug like '%r1%', false) as reasoning
        from range({N_MODELS}) t(i) left join (values {known}) k(i2, slug, provider) on k.i2 = i
    """)
    # cumulative day and hour weights: weekly cycle x growth, and a diurnal curve
    con.execute(f"""
        create temp table day_w as
        with d as (
            select i as day_idx,
                   (case when dayofweek(date '{start}' + i::int) in (0, 6) then 0.6 else 1.0 end) * pow(1.01, i) as w
            from range({days}) t(i))
        select day_idx, sum(w) over (order by day_idx) / sum(w) over () as cum from d
    """)
    con.execute("""
        create temp table hour_w as
        with h as (select i as hour, 0.35 + 0.65 * greatest(0, sin(pi() * (i - 7) / 17)) as w from range(24) t(i))
        select hour, sum(w) over (order by hour) / sum(w) over () as cum from h
    """)
    bad = float(bad_fraction)
    is_csv = fmt == "csv"
    ts_expr = ("case when b < {q} then 'not-a-time' else strftime(ts, '%Y-%m-%d %H:%M:%S.%g') end" if is_csv
               else "ts").format(q=bad / 4)
    prompt_expr = ("case when b between {q} and {h} then '12.5' else cast(prompt_tokens as varchar) end" if is_csv
                   else "prompt_tokens").format(q=bad / 4, h=bad / 2)
    query = f"""
        with base as (
            select random() as u_day, random() as u_hour, random() as u_sec, random() as u_model,
                   random() as n1, random() as n2, random() as n3, random() as u_cache, random() as u_status,
                   random() as b
            from range({rows})
        ),
        placed as (
            select b.*, d.day_idx, h.hour
            from base b
            asof join day_w d on b.u_day <= d.cum
            asof join hour_w h on b.u_hour <= h.cum
        ),
        rows as (
            select
                cast(date '{start}' + day_idx::int as timestamp) + to_hours(hour::int)
                    + to_microseconds(cast(u_sec * 3600e6 as bigint)) as ts,
                m.model, m.provider, m.reasoning,
                greatest(1, cast(exp(ln(900) + 1.3 * sqrt(-2 * ln(greatest(n1, 1e-12))) * cos(2 * pi() * n2)) as bigint))
                    as prompt_tokens,
                greatest(1, cast(exp(ln(180) + 0.9 * sqrt(-2 * ln(greatest(n3, 1e-12))) * sin(2 * pi() * n2)) as bigint))
                    as completion_tokens,
                u_cache, u_status, b
            from placed
            join models m on m.idx = least({N_MODELS - 1}, cast(floor(pow(u_model, 2.2) * {N_MODELS}) as int))
        ),
        final as (
            select
                {ts_expr} as timestamp,
                model,
                provider,
                {prompt_expr} as prompt_tokens,
                case when b between {bad / 2} and {3 * bad / 4} then -completion_tokens else completion_tokens end
                    as completion_tokens,
                cast(prompt_tokens * (case when u_cache < 0.55 then u_cache else 0 end) as bigint) as cached_tokens,
                case when reasoning then cast(completion_tokens * 0.6 as bigint) else 0 end as reasoning_tokens,
                case when b between {3 * bad / 4} and {bad} then 'weird'
                     when u_status < 0.97 then 'success' when u_status < 0.99 then 'error' else 'timeout' end
                    as status,
                cast(ts as date) as date
            from rows
        )
        select * from final
    """
    if flat:
        target = out / f"calls.{fmt}"
        con.execute(f"copy ({query}) to '{target}' (format {fmt})")
    else:
        con.execute(f"copy ({query}) to '{out}' (format {fmt}, partition_by (date), overwrite_or_ignore, "
                    f"filename_pattern 'part-{{i}}')")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 1, 5))
    parser.add_argument("--bad-fraction", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--flat", action="store_true", help="one flat file instead of date= partitions")
    args = parser.parse_args()
    t0 = time.perf_counter()
    generate(args.rows, args.days, args.out, args.format, args.start, args.bad_fraction, args.seed, args.flat)
    print(f"wrote {args.rows:,} rows over {args.days} days to {args.out} ({args.format}) "
          f"in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
