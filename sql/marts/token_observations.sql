-- marts.token_observations: one row per disclosed average/total/run-rate figure, in tokens per day.
-- Peak figures are left out here (see marts.token_peaks). Two figures of one platform on one date
-- over different periods (a month total and a quarter total) stay distinct through period_start.
with final as (
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
)

select * from final
order by platform, segment, observed_on, period_start
