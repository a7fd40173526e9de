-- staging.chip_shipments: Epoch AI shipments with the chip name resolved to its spec row through
-- raw.chip_aliases (names not listed there resolve to themselves). Data: Epoch AI.
with final as (
    select
        s.quarter_start,
        s.designer,
        s.chip,
        coalesce(a.chip, s.chip) as spec_chip,
        s.units_p5,
        s.units_median,
        s.units_p95,
        s.incomplete,
        s.source_id,
        s.confidence
    from raw.chip_shipments_quarterly as s
    left join raw.chip_aliases as a on a.alias = s.chip
)

select * from final
order by quarter_start, designer, chip
