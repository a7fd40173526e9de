-- marts.source_inventory: every source_id the warehouse uses, with the tables it feeds, its rows,
-- its weakest confidence and its newest observation (for the report's data section). Reference data (spec
-- sheets, the catalog, price splits) has no observation date; a projection (a figure published before its
-- period ended, or a capacity marked 'projection') is not an observation.
with cited as (
    select source_id, confidence, observed_on as observed, 'token_volume_observations' as source_table
    from raw.token_volume_observations
    union all
    select source_id, confidence, quarter_start, 'chip_shipments_quarterly' from raw.chip_shipments_quarterly
    union all
    select source_id, confidence, null, 'accelerator_specs' from raw.accelerator_specs
    union all
    select source_id, confidence, period_end, 'vendor_revenue_quarterly' from raw.vendor_revenue_quarterly
    union all
    select source_id, confidence,
           case when coalesce(published_on, period_end) >= period_end then period_end end,
           'packaging_and_supply_metrics'
    from raw.packaging_and_supply_metrics
    union all
    select source_id, confidence, make_date(year, 12, 31), 'fx_rates_annual' from raw.fx_rates_annual
    union all
    select source_id, confidence, null, 'model_catalog' from raw.model_catalog
    union all
    select source_id, confidence, week_end, 'openrouter_weekly_top_models' from raw.openrouter_weekly_top_models
    union all
    select source_id, confidence, null, 'supply_chain' from raw.supply_chain
    union all
    select source_id, confidence, null, 'chip_packaging' from raw.chip_packaging
    union all
    select source_id, confidence, case when basis = 'reported' then period_end end, 'supply_capacity'
    from raw.supply_capacity
    union all
    select source_id, confidence, price_date, 'api_prices' from raw.api_prices
    union all
    select source_id, confidence, observed_on, 'provider_margins' from raw.provider_margins
    union all
    select source_id, confidence, observed_on, 'platform_revenue_run_rate' from raw.platform_revenue_run_rate
    union all
    select source_id, confidence, observed_on, 'platform_usage' from raw.platform_usage
    union all
    select source_id, confidence, null, 'chip_availability' from raw.chip_availability
    union all
    select source_id, confidence, null, 'market_outlooks' from raw.market_outlooks
),

split as (
    -- a cell may cite several sources separated by ';'
    select unnest(string_split(source_id, ';')) as source_id, confidence, observed, source_table
    from cited
),

final as (
    select
        trim(source_id) as source_id,
        string_agg(distinct source_table, ', ' order by source_table) as tables,
        count(*) as rows,
        case min(case confidence when 'low' then 1 when 'medium' then 2 else 3 end)
            when 1 then 'low' when 2 then 'medium' else 'high' end as weakest_confidence,
        max(observed) as latest_observation
    from split
    group by trim(source_id)
)

select * from final
order by source_id
