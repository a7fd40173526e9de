-- marts.supply_metrics: the non-revenue supply figures (CoWoS capacity in wafers per month, HBM and
-- CoWoS-demand market shares, revenue shares, customer concentration) for the capacity cross-checks.
with final as (
    select
        period_start,
        period_end,
        company,
        metric,
        segment,
        value,
        unit,
        source_id,
        confidence,
        note
    from raw.packaging_and_supply_metrics
    where metric <> 'revenue'
)

select * from final
order by metric, segment, company, period_start
