-- marts.data_lag: for each input the report leans on, the newest figure it holds (the end of the newest
-- period observed) and, for the feeds, the as-of time of the newest vintage. The report sets both against
-- its as-of date and flags a lag beyond freshness.lag_warn_days (config/assumptions.yaml). Figures
-- published before their period ended (projections) do not count as the newest figure.
with figures as (
    select 'Token disclosures (curated)' as input, 'token_volume_observations.csv' as origin,
           max(observed_on) as newest_figure, max(coalesce(published_on, observed_on)) as newest_known
    from raw.token_volume_observations
    union all
    select 'OpenRouter weekly top models (curated)', 'openrouter_weekly_top_models.csv', max(week_end),
           max(coalesce(published_on, week_end))
    from raw.openrouter_weekly_top_models
    union all
    select 'OpenRouter rankings-daily (feed)', 'data/snapshots/openrouter', max(day), cast(max(vintage_as_of) as date)
    from raw.feed_openrouter
    union all
    select 'Epoch AI chip sales (curated + feed)', 'chip_shipments_quarterly.csv, data/snapshots/epoch',
           cast(max(quarter_start) + interval 3 month - interval 1 day as date),
           (select cast(max(e.vintage_as_of) as date) from raw.feed_epoch as e)
    from staging.chip_shipments
    union all
    select 'MLPerf Inference results (feed)', 'data/snapshots/mlperf', cast(max(vintage_as_of) as date),
           cast(max(vintage_as_of) as date)
    from raw.feed_mlperf
    union all
    select 'InferenceX benchmarks (feed)', 'data/snapshots/inferencex', max(date), cast(max(vintage_as_of) as date)
    from raw.feed_inferencex
    union all
    select 'Throughput measurements (curated)', 'throughput_measurements.csv', max(published_on), max(published_on)
    from raw.throughput_measurements
    union all
    select 'Vendor revenue', 'vendor_revenue_quarterly.csv', max(period_end), max(coalesce(published_on, period_end))
    from raw.vendor_revenue_quarterly
    where coalesce(published_on, period_end) >= period_end
    union all
    select 'Packaging and supply metrics', 'packaging_and_supply_metrics.csv', max(period_end),
           max(coalesce(published_on, period_end))
    from raw.packaging_and_supply_metrics
    where coalesce(published_on, period_end) >= period_end
    union all
    select 'Supply capacity (reported)', 'supply_capacity.csv', max(period_end), max(coalesce(published_on, period_end))
    from raw.supply_capacity
    where basis = 'reported' and coalesce(published_on, period_end) >= period_end
    union all
    select 'API prices', 'api_prices.csv', max(price_date), max(coalesce(published_on, price_date))
    from raw.api_prices
    union all
    select 'Platform revenue run rates', 'platform_revenue_run_rate.csv', max(observed_on),
           max(coalesce(published_on, observed_on))
    from raw.platform_revenue_run_rate
),

final as (
    select input, origin, newest_figure, newest_known
    from figures
)

select * from final
order by input
