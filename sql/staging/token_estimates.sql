-- staging.token_estimates: token volumes of platforms that publish none, by one of two methods with the
-- assumption and its low/high range from config/assumptions.yaml forecast.estimated_components.<platform>:
--   revenue  run rate (USD/year, raw.platform_revenue_run_rate) / usd_per_million_tokens x 1e6 / 365.25
--   usage    quantity (prompts per day, or monthly active users; raw.platform_usage) x tokens_per_unit
-- tokens_per_day_low/high carry the assumption's range. Lower confidence than a disclosure: the series is
-- labelled tokens/<platform>_estimated/all and kept out of the disclosed totals; the class of undisclosed
-- demand each platform stands for is its `demand_class` in the config (marts.demand_reconciliation).
with assumptions as (
    select
        split_part(name, '.', 3) as platform,
        split_part(name, '.', 4) as leaf,
        value,
        low,
        high
    from meta.assumptions
    where name like 'forecast.estimated_components.%'
),

revenue as (
    select
        r.observed_on,
        coalesce(r.published_on, r.observed_on) as known_on,
        r.platform,
        'revenue' as method,
        r.run_rate_usd as basis_quantity,
        'usd_per_year' as basis_unit,
        p.value as assumption_value,
        r.run_rate_usd / p.value * 1e6 / 365.25 as tokens_per_day,
        r.run_rate_usd / p.high * 1e6 / 365.25 as tokens_per_day_low,
        r.run_rate_usd / p.low * 1e6 / 365.25 as tokens_per_day_high,
        r.source_id,
        r.confidence
    from raw.platform_revenue_run_rate as r
    inner join assumptions as p on r.platform = p.platform and p.leaf = 'usd_per_million_tokens'
),

usage as (
    select
        u.observed_on,
        coalesce(u.published_on, u.observed_on) as known_on,
        u.platform,
        'usage' as method,
        u.quantity,
        u.unit,
        p.value,
        u.quantity * p.value,
        u.quantity * p.low,
        u.quantity * p.high,
        u.source_id,
        u.confidence
    from raw.platform_usage as u
    inner join assumptions as p on u.platform = p.platform and p.leaf = 'tokens_per_unit'
),

final as (
    select * from revenue
    union all
    select * from usage
)

select * from final
order by platform, observed_on
