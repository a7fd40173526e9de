-- staging.epoch_chip_sales: Epoch AI's chip sales feed, one row per (designer, chip, quarter): the newest
-- vintage known at the run's as-of date (raw.feed_epoch holds only those). known_chip: the chip is a row of
-- the spec sheet or an alias (rows of unknown chips do not enter staging.chip_shipments until one is
-- added; a WARN check lists them). Data: Epoch AI.
with picked as (
    select *
    from raw.feed_epoch
    qualify row_number() over (
        partition by designer, chip_type, start_date order by vintage_as_of desc, retrieved_at desc) = 1
),

final as (
    select
        start_date as quarter_start,
        designer,
        chip_type as chip,
        units_p5,
        units_med as units_median,
        units_p95,
        incomplete,
        vintage,
        cast(vintage_as_of as date) as known_on,
        chip_type in (select a.chip from raw.accelerator_specs as a
        union all
        select c.alias from raw.chip_aliases as c) as known_chip
    from picked
)

select * from final
order by quarter_start, designer, chip
