-- marts.packaging_revenue: revenue figures from packaging_and_supply_metrics in USD, converted with
-- the annual average rate of the year the period starts in (raw.fx_rates_annual); the original
-- value and currency are kept. A missing rate leaves revenue_usd null (a blocking check catches it).
with revenue as (
    select * from raw.packaging_and_supply_metrics where metric = 'revenue'
),

final as (
    select
        r.period_start,
        r.period_end,
        r.company,
        r.segment,
        r.value as value_original,
        r.currency,
        year(r.period_start) as fx_year,
        case when r.currency = 'USD' then 1.0 else fx.usd_per_unit end as usd_per_unit,
        r.value * case when r.currency = 'USD' then 1.0 else fx.usd_per_unit end as revenue_usd,
        r.source_id,
        r.confidence,
        r.note
    from revenue as r
    left join raw.fx_rates_annual as fx
        on r.currency = fx.currency and fx.year = year(r.period_start)
)

select * from final
order by company, segment, period_start
