-- staging.token_estimates: token volumes of platforms that publish none, estimated from their disclosed
-- revenue run rate and a price per token (config/assumptions.yaml forecast.estimated_components.<platform>:
-- usd_per_million_tokens, with its low/high range). tokens/day = run rate (USD/year) / price (USD per
-- million tokens) x 1e6 / 365.25. Lower confidence than a disclosure: the series is labelled
-- tokens/<platform>_estimated/all and kept out of the disclosed total.
with prices as (
    select
        split_part(name, '.', 3) as platform,
        value as usd_per_million_tokens,
        low as usd_per_million_low,
        high as usd_per_million_high
    from meta.assumptions
    where name like 'forecast.estimated_components.%.usd_per_million_tokens'
),

final as (
    select
        r.observed_on,
        coalesce(r.published_on, r.observed_on) as known_on,
        r.platform,
        r.run_rate_usd,
        p.usd_per_million_tokens,
        r.run_rate_usd / p.usd_per_million_tokens * 1e6 / 365.25 as tokens_per_day,
        r.run_rate_usd / p.usd_per_million_high * 1e6 / 365.25 as tokens_per_day_low,
        r.run_rate_usd / p.usd_per_million_low * 1e6 / 365.25 as tokens_per_day_high,
        r.source_id,
        r.confidence
    from raw.platform_revenue_run_rate as r
    join prices as p using (platform)
)

select * from final
order by platform, observed_on
