-- marts.vendor_revenue: vendor revenue per calendar quarter. Each fiscal quarter's revenue is spread
-- over the calendar quarters it overlaps in proportion to the days of overlap (day-weighting).
-- is_complete says whether fiscal periods cover every day of the calendar quarter.
with fiscal as (
    select *, date_diff('day', period_start, period_end) + 1 as fiscal_days
    from raw.vendor_revenue_quarterly
),

pieces as (
    select
        f.company,
        f.segment,
        f.fiscal_quarter,
        cast(t.cq as date) as quarter_start,
        f.revenue_usd,
        f.fiscal_days,
        date_diff('day',
            greatest(f.period_start, cast(t.cq as date)),
            least(f.period_end, cast(t.cq + interval 3 month - interval 1 day as date))) + 1 as overlap_days,
        f.source_id,
        f.confidence
    from fiscal as f,
        generate_series(date_trunc('quarter', f.period_start), date_trunc('quarter', f.period_end),
                        interval 3 month) as t (cq)
),

final as (
    select
        quarter_start,
        company,
        segment,
        sum(revenue_usd * overlap_days / fiscal_days) as revenue_usd,
        sum(overlap_days) as covered_days,
        date_diff('day', quarter_start, quarter_start + interval 3 month) as quarter_days,
        sum(overlap_days) >= date_diff('day', quarter_start, quarter_start + interval 3 month) as is_complete,
        string_agg(distinct fiscal_quarter, ';' order by fiscal_quarter) as fiscal_quarters,
        string_agg(distinct source_id, ';' order by source_id) as source_id,
        min(confidence) as confidence
    from pieces
    where overlap_days > 0
    group by quarter_start, company, segment
)

select * from final
order by company, segment, quarter_start
