-- marts.token_observations: one row per disclosed average/total/run-rate figure, in tokens per day.
-- Peak figures are left out here (see marts.token_peaks). Two figures of one platform on one date
-- over different periods (a month total and a quarter total) stay distinct through period_start.
-- OpenRouter's weekly total (every model, the 'other' row included) comes from the rankings-daily feed
-- (staging.openrouter_daily) for each complete Monday-Sunday week no curated figure covers.
with feed_weeks as (
    select
        week_start as period_start,
        sum(total_tokens) as tokens,
        max(known_on) as known_on
    from staging.openrouter_daily
    where complete_week
    group by week_start
),

disclosed as (
    select
        observed_on,
        period_start,
        period_end,
        platform,
        segment,
        tokens_per_day,
        basis,
        value_original,
        unit_original,
        source_id,
        confidence,
        known_on
    from staging.token_volume
    where not is_peak
),

feed as (
    select
        cast(f.period_start + interval 6 day as date) as observed_on,
        f.period_start,
        cast(f.period_start + interval 6 day as date) as period_end,
        'openrouter' as platform,
        'all' as segment,
        f.tokens / 7 as tokens_per_day,
        'total' as basis,
        f.tokens as value_original,
        'tokens_per_week' as unit_original,
        'openrouter_rankings_daily' as source_id,
        'high' as confidence,
        f.known_on
    from feed_weeks as f
    anti join disclosed as d
        on d.platform = 'openrouter' and d.segment = 'all' and f.period_start = d.period_start
),

final as (
    select * from disclosed
    union all
    select * from feed
)

select * from final
order by platform, segment, observed_on, period_start
