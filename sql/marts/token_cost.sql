-- marts.token_cost: cost per million tokens processed, by quarter, scenario, chip class and phase =
-- (amortised capex over the service life + energy at fleet.electricity_usd_per_mwh, from
-- marts.hardware_demand.cost_usd_per_day_median) / tokens processed per day. Prefill tokens exclude
-- prompt tokens served from the prefix cache.
with final as (
    select
        period_start,
        scenario,
        chip_class,
        phase,
        sum(tokens_per_day) as tokens_per_day,
        sum(cost_usd_per_day_median) as cost_usd_per_day,
        sum(cost_usd_per_day_median) / nullif(sum(tokens_per_day), 0) * 1e6 as usd_per_million_tokens
    from marts.hardware_demand
    group by all
)

select * from final
order by period_start, scenario, chip_class, phase
