-- marts.supply_capacity: capacity per quarter of the resources that bound accelerator output, from
-- raw.supply_capacity (reported figures and analysts' projections, each a low/value/high range).
-- Capacity figures are rates at a point in time: wafers_per_month at the end of their period, gb_per_year
-- centred on the middle of their year. A quarter's capacity is the rate at its midpoint, linearly
-- interpolated between the figures, times the quarter (x3 months, /4 years), in the ledger's unit.
-- After the last figure: 'extrapolated' at the growth of the last two figures (value and high); low
-- held flat at the last figure's low. Before the first figure: no row. A stock ('stacks') is constant.
-- basis: 'interpolated' between reported figures, 'projection' toward an analysts' projection,
-- 'extrapolated' beyond the last figure. Quarters run from the first counted shipments to the forecast horizon.
with points as (
    select
        region,
        resource,
        unit,
        case when unit = 'gb_per_year' then cast(period_end - interval 182 day as date) else period_end end as t,
        coalesce(low, value) as low,
        value,
        coalesce(high, value) as high,
        basis,
        source_id
    from raw.supply_capacity
),

quarters as (
    -- from the first counted shipment quarter to the forecast horizon's last quarter (the span of
    -- marts.installed_base_projection, which this table bounds)
    select cast(q as date) as quarter_start
    from generate_series(
        (select min(quarter_start) from marts.chip_shipments),
        (select make_date(cast(value as integer), 10, 1) from meta.assumptions
         where name = 'forecast.horizon_end_year'),
        interval 3 month) as g (q)
),

resources as (
    select region, resource, any_value(unit) as unit, min(t) as first_t from points group by region, resource
),

at_mid as (
    select
        q.quarter_start,
        r.region,
        r.resource,
        r.unit,
        cast(q.quarter_start + interval 45 day as date) as mid
    from quarters as q
    cross join resources as r
    -- a stock counts from the start; rates from their first figure
    where r.unit = 'stacks' or q.quarter_start + interval 45 day >= r.first_t
),

bracket as (
    select
        a.*,
        p0.t as t0, p0.low as low0, p0.value as v0, p0.high as high0, p0.source_id as src0,
        p1.t as t1, p1.low as low1, p1.value as v1, p1.high as high1, p1.basis as basis1, p1.source_id as src1,
        pp.t as tp, pp.value as vp, pp.high as highp
    from at_mid as a
    asof left join points as p0
        on a.region = p0.region and a.resource = p0.resource and a.mid >= p0.t
    asof left join points as p1
        on a.region = p1.region and a.resource = p1.resource and a.mid < p1.t
    -- the figure before p0 (for the growth rate after the last figure)
    asof left join points as pp
        on a.region = pp.region and a.resource = pp.resource and p0.t > pp.t
),

rates as (
    select
        quarter_start, region, resource, unit,
        case
            when unit = 'stacks' then 'reported'
            when t1 is null then 'extrapolated'
            when basis1 = 'projection' then 'projection'
            else 'interpolated'
        end as basis,
        case
            when unit = 'stacks' then coalesce(v0, v1)
            when t1 is null and tp is not null then v0 * pow(v0 / vp, datediff('day', t0, mid) / datediff('day', tp, t0))
            when t1 is null then v0
            else v0 + (v1 - v0) * datediff('day', t0, mid) / datediff('day', t0, t1)
        end as rate,
        case
            when unit = 'stacks' then coalesce(low0, low1)
            when t1 is null then low0
            else low0 + (low1 - low0) * datediff('day', t0, mid) / datediff('day', t0, t1)
        end as rate_low,
        case
            when unit = 'stacks' then coalesce(high0, high1)
            when t1 is null and tp is not null then high0 * pow(v0 / vp, datediff('day', t0, mid) / datediff('day', tp, t0))
            when t1 is null then high0
            else high0 + (high1 - high0) * datediff('day', t0, mid) / datediff('day', t0, t1)
        end as rate_high,
        case when t1 is null or t0 is null then coalesce(src0, src1)
             when src0 = src1 then src0 else src0 || '; ' || src1 end as source_id
    from bracket
),

final as (
    select
        quarter_start,
        region,
        resource,
        case unit when 'wafers_per_month' then 'wafers per quarter' when 'gb_per_year' then 'GB per quarter'
                  else 'stacks (stock)' end as unit,
        rate * case unit when 'wafers_per_month' then 3 when 'gb_per_year' then 0.25 else 1 end as capacity,
        rate_low * case unit when 'wafers_per_month' then 3 when 'gb_per_year' then 0.25 else 1 end as capacity_low,
        rate_high * case unit when 'wafers_per_month' then 3 when 'gb_per_year' then 0.25 else 1 end as capacity_high,
        basis,
        source_id
    from rates
    where rate is not null
)

select * from final
order by region, resource, quarter_start
