-- staging.token_volume: every token disclosure normalised to tokens per day.
--   total     : value / calendar days of the period that ends on observed_on (a month total on
--               2025-05-20 covers 2025-04-21..2025-05-20)
--   average   : a rate; value x (days per unit)^-1, e.g. tokens_per_minute x 1,440
--   run_rate  : an annualised rate; tokens_per_year / 365.25
--   peak      : a peak rate, converted like an average but flagged is_peak (kept apart downstream)
-- known_on: when the figure became public (published_on where the file gives it, else observed_on).
with units as (
    select * from (values
        ('tokens_per_minute', 1.0 / 1440, interval 1 minute),
        ('tokens_per_hour', 1.0 / 24, interval 1 hour),
        ('tokens_per_day', 1.0, interval 1 day),
        ('tokens_per_week', 7.0, interval 7 day),
        ('tokens_per_month', 365.25 / 12, interval 1 month),
        ('tokens_per_quarter', 365.25 / 4, interval 3 month),
        ('tokens_per_half_year', 365.25 / 2, interval 6 month),
        ('tokens_per_year', 365.25, interval 1 year)
    -- a VALUES list needs an alias to name its columns, used or not
    ) as t (unit, nominal_days, period)  -- noqa: AL05
),

typed as (
    select
        o.observed_on,
        o.platform,
        o.segment,
        o.value,
        o.unit,
        o.basis,
        o.source_id,
        o.confidence,
        o.note,
        coalesce(o.published_on, o.observed_on) as known_on,
        u.nominal_days,
        case when o.basis = 'total'
             then cast(o.observed_on - u.period + interval 1 day as date)
             else o.observed_on end as period_start,
        o.observed_on as period_end
    from raw.token_volume_observations as o
    inner join units as u using (unit)
),

final as (
    select
        observed_on,
        period_start,
        period_end,
        platform,
        segment,
        basis,
        basis = 'peak' as is_peak,
        value as value_original,
        unit as unit_original,
        case when basis = 'total'
             then value / (date_diff('day', period_start, period_end) + 1)
             else value / nominal_days end as tokens_per_day,
        source_id,
        confidence,
        note,
        known_on
    from typed
)

select * from final
order by platform, segment, observed_on, period_start
