-- model_inputs.forecast_history: every series the forecasting engine fits, one row per observed period.
--   tokens/<platform>/<segment>     M  tokens_per_day   disclosures on a monthly grid; where a month has
--                                                       several figures, the one over the shortest,
--                                                       latest period wins (March beats Q1)
--   openrouter_top10/<origin>       W  tokens_per_week  weekly OpenRouter top-10 volume by model origin;
--                                                       weeks labelled by the Monday on or after their
--                                                       start (snapshots moved from Sunday to Monday)
--   revenue/<company>/<segment>     Q  usd_per_quarter  calendar quarters fully covered by fiscal data
--   shipments_h100e/<designer>      Q  h100e_per_quarter Epoch AI median shipments, complete quarters only
--   packaging_revenue/<company>/<segment>  Y  usd_per_year  full calendar-year figures
--   calls/all, calls/origin/<origin>  D  tokens_per_day  request-level call logs (when loaded): prompt +
--                                                       completion tokens per day (weekly seasonality)
--   tokens/<platform>_estimated/all  M  tokens_per_day  estimated from revenue run rates (staging.token_estimates)
-- known_on: when the value became public (token disclosures: published_on or observed_on; others: the
-- end of their period), used by the vintage backtest (marts.forecast_vintage_errors).
with tokens as (
    select
        'tokens/' || platform || '/' || segment as series_id,
        'M' as freq,
        cast(date_trunc('month', observed_on) as date) as period_start,
        tokens_per_day as value,
        'tokens_per_day' as unit,
        known_on,
        row_number() over (
            partition by platform, segment, date_trunc('month', observed_on)
            order by period_start desc, observed_on desc) as pick
    from marts.token_observations
),

estimated as (
    select
        'tokens/' || platform || '_estimated/all' as series_id,
        'M' as freq,
        cast(date_trunc('month', observed_on) as date) as period_start,
        tokens_per_day as value,
        'tokens_per_day' as unit,
        known_on,
        row_number() over (partition by platform, date_trunc('month', observed_on) order by observed_on desc) as pick
    from staging.token_estimates
),

openrouter as (
    select
        'openrouter_top10/' || origin as series_id,
        'W' as freq,
        cast(date_trunc('week', week_start + interval 1 day) as date) as period_start,
        sum(total_tokens) as value,
        'tokens_per_week' as unit,
        max(week_end) as known_on,
        1 as pick
    from marts.model_call_volume_weekly
    group by all
),

revenue as (
    select
        'revenue/' || company || '/' || segment as series_id,
        'Q' as freq,
        quarter_start as period_start,
        revenue_usd as value,
        'usd_per_quarter' as unit,
        cast(quarter_start + interval 3 month - interval 1 day as date) as known_on,
        1 as pick
    from marts.vendor_revenue
    where is_complete
),

shipments as (
    select
        'shipments_h100e/' || designer as series_id,
        'Q' as freq,
        quarter_start as period_start,
        sum(h100e_median) as value,
        'h100e_per_quarter' as unit,
        cast(quarter_start + interval 3 month - interval 1 day as date) as known_on,
        1 as pick
    from marts.chip_shipments
    group by all
    having not bool_or(incomplete)
),

packaging as (
    select
        'packaging_revenue/' || company || '/' || segment as series_id,
        'Y' as freq,
        period_start,
        revenue_usd as value,
        'usd_per_year' as unit,
        period_end as known_on,
        1 as pick
    from marts.packaging_revenue
    where month(period_start) = 1 and day(period_start) = 1
      and period_end = period_start + interval 1 year - interval 1 day
      and revenue_usd is not null
),

calls as (
    select 'calls/all' as series_id, 'D' as freq, day as period_start,
           cast(sum(prompt_tokens + completion_tokens) as double) as value, 'tokens_per_day' as unit,
           day as known_on, 1 as pick
    from marts.call_volume_daily
    group by day
    union all
    select 'calls/origin/' || origin, 'D', day, cast(sum(prompt_tokens + completion_tokens) as double),
           'tokens_per_day', day as known_on, 1
    from marts.call_volume_daily
    group by origin, day
),

final as (
    select series_id, freq, period_start, value, unit, known_on from tokens where pick = 1
    union all
    select series_id, freq, period_start, value, unit, known_on from estimated where pick = 1
    union all
    select series_id, freq, period_start, value, unit, known_on from calls
    union all
    select series_id, freq, period_start, value, unit, known_on from openrouter
    union all
    select series_id, freq, period_start, value, unit, known_on from revenue
    union all
    select series_id, freq, period_start, value, unit, known_on from shipments
    union all
    select series_id, freq, period_start, value, unit, known_on from packaging
)

select * from final
order by series_id, period_start
