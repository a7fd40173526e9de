-- staging.accelerator_specs: the spec sheet plus its H100-equivalent (Epoch AI: dense 8-bit OP/s
-- / the H100's 8-bit OP/s, meta.assumptions h100e.h100_8bit_tops). Chips without an 8-bit figure
-- use 2 x bf16.
with reference as (
    select value as h100_8bit_tops from meta.assumptions where name = 'h100e.h100_8bit_tops'
),

final as (
    select
        s.chip,
        s.designer,
        s.chip_class,
        s.release_date,
        s.china_market,
        s.bf16_tflops,
        s.fp8_tflops,
        s.fp4_tflops,
        coalesce(s.fp8_tflops, 2 * s.bf16_tflops) as ops8_tops,
        case when s.fp8_tflops is not null then 'fp8' else '2x_bf16' end as ops8_basis,
        coalesce(s.fp8_tflops, 2 * s.bf16_tflops) / r.h100_8bit_tops as h100e_per_chip,
        s.mem_type,
        s.mem_gb,
        s.mem_tbps,
        s.sram_mb,
        s.sram_tbps,
        s.tdp_w,
        s.unit_price_usd,
        s.source_id,
        s.confidence,
        s.note
    from raw.accelerator_specs as s
    cross join reference as r
)

select * from final
order by designer, chip
