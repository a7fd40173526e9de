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
-- SMIC logic wafers they need (dies per package / good dies per wafer, where sourced).
-- Supply bounds: projected shipments are capped where a quarter's CoWoS, HBM or SMIC capacity
-- (marts.supply_capacity) cannot build them; capped_by names the resource and uncapped_shipped_h100e keeps
-- the forecast's figure. Data: Epoch AI.
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
    left join staging.accelerator_specs as p on s.spec_chip = p.chip
    left join raw.chip_packaging as k on s.spec_chip = k.chip
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
        sum(o.h100e_median order by o.h100e_median)
            / sum(sum(o.h100e_median order by o.h100e_median)) over (
                partition by o.designer order by o.region rows between unbounded preceding and unbounded following)
            as share,
        sum(o.units_median order by o.units_median) / nullif(sum(o.h100e_median order by o.h100e_median), 0) as units_per_h100e,
        sum(o.cowos_wafers order by o.cowos_wafers) / nullif(sum(o.h100e_median order by o.h100e_median), 0) as wafers_per_h100e,
        sum(o.hbm_gb order by o.hbm_gb) / nullif(sum(o.h100e_median order by o.h100e_median), 0) as hbm_gb_per_h100e,
        sum(o.hbm_stacks order by o.hbm_stacks) / nullif(sum(o.h100e_median order by o.h100e_median), 0) as stacks_per_h100e,
        sum(o.foundry_wafers order by o.foundry_wafers) / nullif(sum(o.h100e_median order by o.h100e_median), 0)
            as foundry_wafers_per_h100e,
        sum(o.power_mw order by o.power_mw) / nullif(sum(o.h100e_median order by o.h100e_median), 0) as mw_per_h100e,
        sum(o.mem_tbps order by o.mem_tbps) / nullif(sum(o.h100e_median order by o.h100e_median), 0) as tbps_per_h100e
    from observed as o
    inner join recent using (quarter_start, designer)
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
    inner join mix as m on f.designer = m.designer
    left join designer_quarter as q on f.designer = q.designer and f.quarter_start = q.quarter_start
    left join observed as o on f.designer = o.designer and m.region = o.region and f.quarter_start = o.quarter_start
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

-- supply bounds: projected (and partial) shipments may not need more of a resource than the quarter's capacity
-- (marts.supply_capacity): CoWoS wafers and HBM for chips of the global supply chain, SMIC advanced wafers for
-- domestic chips with sourced dies per wafer. Where the quarter's shipments need more, every projected row
-- drawing on that resource is scaled down by capacity / required (counted shipments are never changed) and
-- marked capped, with the resource named; a row drawing on several takes the tightest.
need as (
    select
        quarter_start,
        sum(cowos_wafers order by designer, region) as cowos,
        sum(hbm_gb order by designer, region) as hbm,
        sum(foundry_wafers order by designer, region) as smic,
        sum(cowos_wafers order by designer, region) filter (where basis <> 'observed') as cowos_projected,
        sum(hbm_gb order by designer, region) filter (where basis <> 'observed') as hbm_projected,
        sum(foundry_wafers order by designer, region) filter (where basis <> 'observed') as smic_projected
    from shipments
    group by quarter_start
),

capacity as (
    select
        quarter_start,
        max(capacity) filter (where region = 'rest' and resource = 'cowos') as cowos,
        max(capacity) filter (where region = 'rest' and resource = 'hbm') as hbm,
        max(capacity) filter (where region = 'china' and resource = 'smic_advanced') as smic
    from marts.supply_capacity
    group by quarter_start
),

-- the share of each resource's projected use that fits: (capacity - counted use) / projected use, at most 1
fits as (
    select
        n.quarter_start,
        case when c.cowos is not null and n.cowos_projected > 0
             then least(1.0, greatest(0.0, (c.cowos - (n.cowos - n.cowos_projected)) / n.cowos_projected)) end as cowos,
        case when c.hbm is not null and n.hbm_projected > 0
             then least(1.0, greatest(0.0, (c.hbm - (n.hbm - n.hbm_projected)) / n.hbm_projected)) end as hbm,
        case when c.smic is not null and n.smic_projected > 0
             then least(1.0, greatest(0.0, (c.smic - (n.smic - n.smic_projected)) / n.smic_projected)) end as smic
    from need as n
    left join capacity as c using (quarter_start)
),

scaled as (
    select
        s.*,
        -- the tightest of the resources the row draws on (no capacity figure: unbounded); counted rows stay
        case when s.basis = 'observed' then 1.0 else least(
            case when s.cowos_wafers > 0 then coalesce(f.cowos, 1.0) else 1.0 end,
            case when s.hbm_gb > 0 then coalesce(f.hbm, 1.0) else 1.0 end,
            case when s.foundry_wafers > 0 then coalesce(f.smic, 1.0) else 1.0 end) end as factor,
        case
            when s.basis = 'observed' then null
            when s.foundry_wafers > 0 and coalesce(f.smic, 1.0) < 1.0 then 'smic_advanced'
            when s.cowos_wafers > 0 and coalesce(f.cowos, 1.0) < 1.0
                 and coalesce(f.cowos, 1.0) <= coalesce(f.hbm, 1.0) then 'cowos'
            when s.hbm_gb > 0 and coalesce(f.hbm, 1.0) < 1.0 then 'hbm'
        end as capped_by
    from shipments as s
    left join fits as f using (quarter_start)
),

bounded as (
    select
        quarter_start, designer, region, chip_class, basis,
        h100e_median * factor as h100e_median,
        h100e_p5 * factor as h100e_p5,
        h100e_p95 * factor as h100e_p95,
        units_median * factor as units_median,
        cowos_wafers * factor as cowos_wafers,
        hbm_gb * factor as hbm_gb,
        hbm_stacks * factor as hbm_stacks,
        foundry_wafers * factor as foundry_wafers,
        power_mw * factor as power_mw,
        mem_tbps * factor as mem_tbps,
        h100e_median as uncapped_h100e,
        capped_by
    from scaled
),

grid as (
    select cast(t.q as date) as quarter_start, g.designer, g.region, g.chip_class
    from (select distinct designer, region, chip_class from bounded) as g
    cross join generate_series(
        (select min(b.quarter_start) from bounded as b),
        (select max(b.quarter_start) from bounded as b),
        interval 3 month) as t (q)
),

final as (
    select
        cast(g.quarter_start + interval 3 month - interval 1 day as date) as quarter_end,
        g.quarter_start,
        g.designer,
        g.region,
        g.chip_class,
        coalesce(any_value(s.basis) filter (where s.quarter_start = g.quarter_start), 'none') as basis,
        coalesce(sum(s.uncapped_h100e order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0)
            as uncapped_shipped_h100e,
        any_value(s.capped_by) filter (where s.quarter_start = g.quarter_start) as capped_by,
        coalesce(sum(s.h100e_median order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0) as shipped_h100e,
        coalesce(sum(s.h100e_p5 order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0) as shipped_h100e_p5,
        coalesce(sum(s.h100e_p95 order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0) as shipped_h100e_p95,
        coalesce(sum(s.units_median order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0) as shipped_units,
        coalesce(sum(s.cowos_wafers order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0) as shipped_cowos_wafers,
        coalesce(sum(s.hbm_gb order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0) as shipped_hbm_gb,
        coalesce(sum(s.hbm_stacks order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0)
            as shipped_domestic_hbm_stacks,
        coalesce(sum(s.foundry_wafers order by s.quarter_start) filter (where s.quarter_start = g.quarter_start), 0)
            as shipped_domestic_foundry_wafers,
        coalesce(sum(s.h100e_median order by s.quarter_start) filter (
            where s.quarter_start + to_months(3 * l.quarters) = g.quarter_start), 0) as retired_h100e,
        coalesce(sum(s.h100e_median order by s.quarter_start) filter (
            where s.quarter_start + to_months(3 * l.quarters) > g.quarter_start), 0)
            as installed_h100e,
        coalesce(sum(s.h100e_p5 order by s.quarter_start) filter (where s.quarter_start + to_months(3 * l.quarters) > g.quarter_start), 0)
            as installed_h100e_p5,
        coalesce(sum(s.h100e_p95 order by s.quarter_start) filter (where s.quarter_start + to_months(3 * l.quarters) > g.quarter_start), 0)
            as installed_h100e_p95,
        coalesce(sum(s.units_median order by s.quarter_start) filter (
            where s.quarter_start + to_months(3 * l.quarters) > g.quarter_start), 0)
            as installed_units,
        coalesce(sum(s.mem_tbps order by s.quarter_start) filter (where s.quarter_start + to_months(3 * l.quarters) > g.quarter_start), 0)
            as installed_mem_tbps,
        coalesce(sum(s.power_mw order by s.quarter_start) filter (where s.quarter_start + to_months(3 * l.quarters) > g.quarter_start), 0)
            as installed_power_mw
    from grid as g
    cross join life as l
    left join bounded as s
        on g.designer = s.designer and g.region = s.region
        and g.quarter_start >= s.quarter_start
        and s.quarter_start + to_months(3 * l.quarters) >= g.quarter_start
    group by g.quarter_start, g.designer, g.region, g.chip_class
)

select * from final
order by quarter_end, designer, region
