-- staging.chip_shipments: Epoch AI shipments with the chip name resolved to its spec row through
-- raw.chip_aliases (names not listed there resolve to themselves). Rows of the Epoch feed
-- (staging.epoch_chip_sales: the newest vintage known at the as-of date) replace the curated rows of
-- the same designer, chip and quarter; curated rows the feed does not cover (Huawei, Cambricon, and every
-- row before the first feed vintage) stay. Data: Epoch AI.
with feed as (
    select quarter_start, designer, chip, units_p5, units_median, units_p95, incomplete,
           'epoch_chip_counts' as source_id, 'medium' as confidence, 'feed ' || vintage as origin
    from staging.epoch_chip_sales
    where known_chip
),

curated as (
    select s.quarter_start, s.designer, s.chip, s.units_p5, s.units_median, s.units_p95, s.incomplete,
           s.source_id, s.confidence, 'curated' as origin
    from raw.chip_shipments_quarterly as s
    anti join feed using (quarter_start, designer, chip)
),

final as (
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
        s.confidence,
        s.origin
    from (select * from feed
    union all
    select * from curated) as s
    left join raw.chip_aliases as a on s.chip = a.alias
)

select * from final
order by quarter_start, designer, chip
