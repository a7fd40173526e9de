-- marts.installed_base_projection: accelerators shipped and in service per quarter, designer and
-- demand region (china_market chips = 'china'), observed history and projection in one table.
-- basis: 'observed' = a complete quarter of Epoch AI shipments; 'partial' = a quarter flagged
-- incomplete, taken as max(shipments so far, the forecast for the quarter) since the partial count
-- is only a floor; 'projected' = the designer's H100e shipment forecast (marts.forecast,
-- shipments_h100e/<designer>), split by region and turned into units, CoWoS wafers, HBM and power
-- with the designer's mix of its last four complete quarters. Projected p5/p95 come from the forecast's
-- 80% interval read as log-normal. Shipments retire installed_base.service_life_years after their
-- quarter; installed p5/p95 sum the quarters' percentiles (errors fully correlated: the widest band).
-- Sums run in quarter order (ordered aggregates) so that a re-run gives bit-identical rows.
-- Per-chip CoWoS packages per wafer and HBM stacks: raw.chip_packaging; shipped_hbm_gb counts chips of
-- the global supply chain (HBM from SK hynix, Samsung, Micron), shipped_domestic_hbm_stacks the stacks
-- China's domestic chips draw from the stock that entered China, shipped_domestic_foundry_wafers the
-- SMIC logic wafers they need (dies per package / good dies per wafer, where sourced). Data: Epoch AI.
with life as (
    select cast(round(value * 4) as integer) as quarters
    from meta.assumptions where name = 'installed_base.service_life_years'
),

chips as (
    select
        s.quarter_start,
        s.designer,
        s.chip_class,
        case when s.china_market then 'china' else 'rest' end as region,
        s.incomplete,
        s.units_median,
        s.h100e_median,
        s.h100e_p5,
        s.h100e_p95,
        s.power_mw_median,
        s.mem_tbps_median,
        s.units_median / nullif(k.packages_per_wafer, 0) as cowos_wafers,
        -- HBM drawn from the global flow (SK hynix, Samsung, Micron) by chips of the global supply chain,
        -- and stacks drawn from the stock that entered China (domestic chips: supply_region 'china')
        case when coalesce(k.supply_region, 'rest') = 'rest' then s.units_median * coalesce(p.mem_gb, 0) else 0 end
            as hbm_gb,
        case when k.supply_region = 'china' then s.units_median * coalesce(k.hbm_stacks, 0) else 0 end
            as hbm_stacks,
        -- domestic logic wafers (SMIC): dies per package / good dies per wafer, where both are sourced
        case when k.supply_region = 'china'
             then s.units_median * k.dies_per_package / nullif(k.good_dies_per_wafer, 0) end as foundry_wafers
    from marts.chip_shipments as s
    left join staging.accelerator_specs as p on p.chip = s.spec_chip
    left join raw.chip_packaging as k on k.chip = s.spec_chip
),

observed as (
    select
        quarter_start, designer, region,
        any_value(chip_class) as chip_class,
        bool_or(incomplete) as incomplete,
        sum(h100e_median order by h100e_median) as h100e_median,
        sum(h100e_p5 order by h100e_p5) as h100e_p5,
        sum(h100e_p95 order by h100e_p95) as h100e_p95,
        sum(units_median order by units_median) as units_median,
        coalesce(sum(cowos_wafers order by cowos_wafers), 0) as cowos_wafers,
        sum(hbm_gb order by hbm_gb) as hbm_gb,
        sum(hbm_stacks order by hbm_stacks) as hbm_stacks,
        coalesce(sum(foundry_wafers order by foundry_wafers), 0) as foundry_wafers,
        sum(power_mw_median order by power_mw_median) as power_mw,
        sum(mem_tbps_median order by mem_tbps_median) as mem_tbps
    from chips
    group by quarter_start, designer, region
),

-- a designer's quarter is complete when none of its rows is flagged incomplete
designer_quarter as (
    select quarter_start, designer, bool_or(incomplete) as incomplete, sum(h100e_median order by h100e_median) as h100e
    from observed
    group by quarter_start, designer
),

recent as (
    select quarter_start, designer
    from designer_quarter
    where not incomplete
    qualify row_number() over (partition by designer order by quarter_start desc) <= 4
),

-- per designer and region: share of the designer's H100e and amounts per H100e in the recent mix
mix as (
    select
        o.designer,
        o.region,
        any_value(o.chip_class) as chip_class,
        sum(o.h100e_median order by o.h100e_median) / sum(sum(o.h100e_median order by o.h100e_median)) over (partition by o.designer order by o.region rows between unbounded preceding and unbounded following) as share,
        sum(o.units_median order by o.units_median) / nullif(sum(o.h100e_median order by o.h100e_median), 0) as units_per_h100e,
        sum(o.cowos_wafers order by o.cowos_wafers) / nullif(sum(o.h100e_median order by o.h100e_median), 0) as wafers_per_h100e,
        sum(o.hbm_gb order by o.hbm_gb) / nullif(sum(o.h100e_median order by o.h100e_median), 0) as hbm_gb_per_h100e,
        sum(o.hbm_stacks order by o.hbm_stacks) / nullif(sum(o.h100e_median order by o.h100e_median), 0) as stacks_per_h100e,
        sum(o.foundry_wafers order by o.foundry_wafers) / nullif(sum(o.h100e_median order by o.h100e_median), 0) as foundry_wafers_per_h100e,
        sum(o.power_mw order by o.power_mw) / nullif(sum(o.h100e_median order by o.h100e_median), 0) as mw_per_h100e,
        sum(o.mem_tbps order by o.mem_tbps) / nullif(sum(o.h100e_median order by o.h100e_median), 0) as tbps_per_h100e
    from observed as o
    inner join recent as r using (quarter_start, designer)
    group by o.designer, o.region
),

forecast as (
    select
        replace(series_id, 'shipments_h100e/', '') as designer,
        period_start as quarter_start,
        value,
        -- log-normal read of the 80% interval: p5/p95 = value x exp(-/+ 1.645 sigma)
        value * exp(-1.6449 * (ln(hi80) - ln(lo80)) / (2 * 1.2816)) as p5,
        value * exp(1.6449 * (ln(hi80) - ln(lo80)) / (2 * 1.2816)) as p95
    from marts.forecast
    where series_id like 'shipments_h100e/%' and is_forecast and value > 0 and lo80 > 0
),

projected as (
    select
        f.quarter_start,
        f.designer,
        m.region,
        m.chip_class,
        case when q.incomplete then 'partial' else 'projected' end as basis,
        -- an incomplete quarter: the partial count is a floor under the forecast
        greatest(f.value * m.share, coalesce(o.h100e_median, 0)) as h100e_median,
        greatest(f.p5 * m.share, coalesce(o.h100e_median, 0)) as h100e_p5,
        greatest(f.p95 * m.share, coalesce(o.h100e_median, 0)) as h100e_p95,
        m.units_per_h100e,
        m.wafers_per_h100e,
        m.hbm_gb_per_h100e,
        m.stacks_per_h100e,
        m.foundry_wafers_per_h100e,
        m.mw_per_h100e,
        m.tbps_per_h100e
    from forecast as f
    inner join mix as m on m.designer = f.designer
    left join designer_quarter as q on q.designer = f.designer and q.quarter_start = f.quarter_start
    left join observed as o on o.designer = f.designer and o.region = m.region and o.quarter_start = f.quarter_start
    where q.incomplete is null or q.incomplete
),

shipments as (
    -- counted quarters: complete ones as observed; an incomplete one without a forecast stays as counted
    -- (a floor), marked partial (one with a forecast is in `projected`)
    select
        o.quarter_start, o.designer, o.region, o.chip_class,
        case when q.incomplete then 'partial' else 'observed' end as basis,
        o.h100e_median, o.h100e_p5, o.h100e_p95, o.units_median, o.cowos_wafers, o.hbm_gb, o.hbm_stacks,
        o.foundry_wafers, o.power_mw, o.mem_tbps
    from observed as o
    inner join designer_quarter as q using (quarter_start, designer)
    where not q.incomplete or not exists (
        select 1 from forecast as f where f.designer = o.designer and f.quarter_start = o.quarter_start)
    union all
    select
        quarter_start, designer, region, chip_class, basis,
        h100e_median, h100e_p5, h100e_p95,
        h100e_median * units_per_h100e,
        h100e_median * coalesce(wafers_per_h100e, 0),
        h100e_median * hbm_gb_per_h100e,
        h100e_median * stacks_per_h100e,
        h100e_median * coalesce(foundry_wafers_per_h100e, 0),
        h100e_median * mw_per_h100e,
        h100e_median * tbps_per_h100e
    from projected
),

grid as (
    select cast(q as date) as quarter_start, g.designer, g.region, g.chip_class
    from (select distinct designer, region, chip_class from shipments) as g
    cross join generate_series(
        (select min(quarter_start) from shipments),
        (select max(quarter_start) from shipments),
        interval 3 month) as t(q)
),

final as (
    select
        cast(g.quarter_start + interval 3 month - interval 1 day as date) as quarter_end,
        g.quarter_start,
        g.designer,
        g.region,
        g.chip_class,
        coalesce(any_value(s.basis) filter (where s.quarter_start = g.quarter_start), 'none') as basis,
        coalesce(sum(s.h100e_median order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0) as shipped_h100e,
        coalesce(sum(s.h100e_p5 order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0) as shipped_h100e_p5,
        coalesce(sum(s.h100e_p95 order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0) as shipped_h100e_p95,
        coalesce(sum(s.units_median order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0) as shipped_units,
        coalesce(sum(s.cowos_wafers order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0) as shipped_cowos_wafers,
        coalesce(sum(s.hbm_gb order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0) as shipped_hbm_gb,
        coalesce(sum(s.hbm_stacks order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0) as shipped_domestic_hbm_stacks,
        coalesce(sum(s.foundry_wafers order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0)
            as shipped_domestic_foundry_wafers,
        coalesce(sum(s.h100e_median order by s.quarter_start) filter (
            where s.quarter_start + to_months(3 * l.quarters) = g.quarter_start), 0) as retired_h100e,
        coalesce(sum(s.h100e_median order by s.quarter_start) filter (where s.quarter_start + to_months(3 * l.quarters) > g.quarter_start), 0)
            as installed_h100e,
        coalesce(sum(s.h100e_p5 order by s.quarter_start) filter (where s.quarter_start + to_months(3 * l.quarters) > g.quarter_start), 0)
            as installed_h100e_p5,
        coalesce(sum(s.h100e_p95 order by s.quarter_start) filter (where s.quarter_start + to_months(3 * l.quarters) > g.quarter_start), 0)
            as installed_h100e_p95,
        coalesce(sum(s.units_median order by s.quarter_start) filter (where s.quarter_start + to_months(3 * l.quarters) > g.quarter_start), 0)
            as installed_units,
        coalesce(sum(s.mem_tbps order by s.quarter_start) filter (where s.quarter_start + to_months(3 * l.quarters) > g.quarter_start), 0)
            as installed_mem_tbps,
        coalesce(sum(s.power_mw order by s.quarter_start) filter (where s.quarter_start + to_months(3 * l.quarters) > g.quarter_start), 0)
            as installed_power_mw
    from grid as g
    cross join life as l
    left join shipments as s
        on s.designer = g.designer and s.region = g.region
        and s.quarter_start <= g.quarter_start
        and s.quarter_start + to_months(3 * l.quarters) >= g.quarter_start
    group by g.quarter_start, g.designer, g.region, g.chip_class
)

select * from final
order by quarter_end, designer, region
