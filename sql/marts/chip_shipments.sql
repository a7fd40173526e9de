-- marts.chip_shipments: quarterly accelerator shipments (Data: Epoch AI) with H100-equivalents,
-- power and capex. h100e = units x chip 8-bit OP/s / 1,979 TOPS; power_mw = units x TDP;
-- capex_usd = units x unit price; mem_tbps = units x HBM/DDR bandwidth (TB/s; SRAM-only parts 0).
-- A chip with no TDP or price in the spec sheet gets null there.
with final as (
    select
        s.quarter_start,
        s.designer,
        s.chip,
        s.spec_chip,
        p.chip_class,
        p.china_market,
        s.units_p5,
        s.units_median,
        s.units_p95,
        s.units_p5 * p.h100e_per_chip as h100e_p5,
        s.units_median * p.h100e_per_chip as h100e_median,
        s.units_p95 * p.h100e_per_chip as h100e_p95,
        s.units_median * p.tdp_w / 1e6 as power_mw_median,
        s.units_median * coalesce(p.mem_tbps, 0) as mem_tbps_median,
        s.units_median * p.unit_price_usd as capex_usd_median,
        s.incomplete,
        s.source_id,
        s.confidence
    from staging.chip_shipments as s
    left join staging.accelerator_specs as p on s.spec_chip = p.chip
)

select * from final
order by quarter_start, designer, chip
