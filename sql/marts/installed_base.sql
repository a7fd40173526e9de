-- marts.installed_base: accelerators in service at the end of each quarter = cumulative shipments
-- less retirements: a quarter's shipments count for meta.assumptions
-- installed_base.service_life_years after their shipment quarter, then retire.
-- p5 and p95 are sums of the per-chip percentiles (errors treated as fully correlated, which
-- gives the widest, most cautious band). mem_tbps_median: the installed HBM/DDR bandwidth (TB/s),
-- the resource decode consumes. Data: Epoch AI.
with life as (
    select cast(round(value * 12) as integer) as months
    from meta.assumptions where name = 'installed_base.service_life_years'
),

quarters as (
    select cast(q as date) as quarter_start
    from generate_series(
        (select min(quarter_start) from marts.chip_shipments),
        (select max(quarter_start) from marts.chip_shipments),
        interval 3 month) as t (q)
),

groups as (
    select distinct designer, chip_class, china_market from marts.chip_shipments
),

final as (
    select
        cast(q.quarter_start + interval 3 month - interval 1 day as date) as quarter_end,
        g.designer,
        g.chip_class,
        g.china_market,
        coalesce(sum(s.h100e_median), 0) as h100e_median,
        coalesce(sum(s.h100e_p5), 0) as h100e_p5,
        coalesce(sum(s.h100e_p95), 0) as h100e_p95,
        coalesce(sum(s.units_median), 0) as units_median,
        coalesce(sum(s.power_mw_median), 0) as power_mw_median,
        coalesce(sum(s.mem_tbps_median), 0) as mem_tbps_median
    from quarters as q
    cross join groups as g
    cross join life as l
    left join marts.chip_shipments as s
        on g.designer = s.designer
        and s.chip_class is not distinct from g.chip_class
        and s.china_market is not distinct from g.china_market
        and q.quarter_start >= s.quarter_start
        and s.quarter_start + to_months(l.months) > q.quarter_start
    group by all
)

select * from final
order by quarter_end, designer, chip_class, china_market
