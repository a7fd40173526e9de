-- marts.demand_coherence: disclosures that break the demand hierarchy (meta.forecast_hierarchy, from
-- config/assumptions.yaml forecast.hierarchy): in some period the disclosed parts of an entry (disjoint
-- parts inside a total) add up to more than the total's disclosure for the same month (x the entry's
-- unit scale, e.g. 7 for weekly parts of a daily total). Every row is a WARN finding naming both sides;
-- the forecasts are reconciled regardless (forecasts/demand.py).
with parts as (
    select
        h.entry,
        h.total,
        h.parts,
        h.scale,
        f.period_start,
        count(*) as n_parts_disclosed,
        sum(f.value) as parts_value
    from meta.forecast_hierarchy as h
    inner join model_inputs.forecast_history as f on h.part = f.series_id
    group by all
),

final as (
    select
        p.total,
        p.parts,
        p.period_start,
        p.n_parts_disclosed,
        p.parts_value,
        t.value as total_value,
        p.scale,
        p.parts_value / (t.value * p.scale) as ratio
    from parts as p
    inner join model_inputs.forecast_history as t
      on p.total = t.series_id
     and t.period_start = cast(date_trunc('month', p.period_start) as date)
    where p.parts_value > t.value * p.scale
)

select * from final
order by total, parts, period_start
