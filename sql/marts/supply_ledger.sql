-- marts.supply_ledger: per quarter and supply region, each resource that bounds accelerator output:
-- the capacity (marts.supply_capacity) against what the accelerators shipped or projected in that
-- quarter require (marts.installed_base_projection: observed, partial and projected shipments).
--   rest / cowos      CoWoS wafers per quarter: units / packages per wafer of each chip (TSMC and its
--                     OSAT partners package every accelerator of the global supply chain, incl. H20)
--   rest / hbm        GB of HBM per quarter: units x memory of each chip of the global supply chain
--   china / smic_advanced  SMIC 7 nm-class wafers per quarter (all customers) against the wafers China's
--                     domestic accelerators need: dies per package / good dies per wafer
--   china / hbm_stock HBM stacks: the stock that entered China before the 2024 controls, against the
--                     stacks China's domestic accelerators used since the first shipment (cumulative)
-- ratio = required / capacity (above 1: the projected shipments cannot be built with that resource);
-- ratio_low/high pair the required range with the opposite capacity end. binding marks the resource
-- with the highest ratio in the quarter and region. TSMC's leading-edge logic wafers and power are not
-- in the ledger (no sourced capacity for accelerators; docs/methodology.md).
with need as (
    select
        quarter_start,
        sum(shipped_cowos_wafers order by designer, region) as cowos,
        sum(shipped_hbm_gb order by designer, region) as hbm,
        sum(shipped_domestic_hbm_stacks order by designer, region) as stacks,
        sum(shipped_domestic_foundry_wafers order by designer, region) as smic,
        sum(shipped_h100e_p5 order by designer, region) / nullif(sum(shipped_h100e order by designer, region), 0) as low_factor,
        sum(shipped_h100e_p95 order by designer, region) / nullif(sum(shipped_h100e order by designer, region), 0) as high_factor,
        case when bool_or(basis = 'projected') then 'projected'
             when bool_or(basis = 'partial') then 'partial' else 'observed' end as required_basis
    from marts.installed_base_projection
    group by quarter_start
),

required as (
    select quarter_start, 'rest' as region, 'cowos' as resource, cowos as required,
           cowos * low_factor as required_low, cowos * high_factor as required_high, required_basis
    from need
    union all
    select quarter_start, 'rest', 'hbm', hbm, hbm * low_factor, hbm * high_factor, required_basis
    from need
    union all
    select quarter_start, 'china', 'smic_advanced', smic, smic * low_factor, smic * high_factor, required_basis
    from need
    union all
    -- a stock: the stacks used to date (quarters before the first domestic shipment count zero)
    select quarter_start, 'china', 'hbm_stock',
           sum(stacks) over w,
           sum(stacks * low_factor) over w,
           sum(stacks * high_factor) over w,
           required_basis
    from need
    window w as (order by quarter_start rows between unbounded preceding and current row)
),

joined as (
    select
        c.quarter_start as period_start,
        c.region,
        c.resource,
        c.unit,
        c.capacity,
        c.capacity_low,
        c.capacity_high,
        r.required,
        r.required_low,
        r.required_high,
        r.required / nullif(c.capacity, 0) as ratio,
        r.required_low / nullif(c.capacity_high, 0) as ratio_low,
        r.required_high / nullif(c.capacity_low, 0) as ratio_high,
        c.basis as capacity_basis,
        r.required_basis,
        c.source_id
    from marts.supply_capacity as c
    inner join required as r using (quarter_start, region, resource)
    -- the stock's rows start with the first domestic shipment that draws on it
    where not (c.region = 'china' and r.required = 0)
),

final as (
    select
        *,
        ratio is not null and ratio = max(ratio) over (partition by period_start, region) as binding
    from joined
)

select * from final
order by period_start, region, resource
