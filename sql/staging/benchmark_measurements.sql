-- staging.benchmark_measurements: the benchmark feeds' rows the serving calibration can use, in the
-- columns of raw.throughput_measurements (in_fit = false: held-out references, never fitted). MLPerf
-- (newest vintage of each round): closed division, data-center suite, results in tokens/s, one accelerator
-- type per system; tokens/s per chip = the system's result / (accelerators per node x nodes). InferenceX
-- (newest vintage per row): tokens/s per GPU (input + output) and the median per-user speed. Names map to
-- chips, models and scenarios through raw.benchmark_name_map (first LIKE match in file order); rows
-- whose chip or model does not map are left out.
with names as (
    select feed, field, lower(pattern) as pattern, value, prompt_tokens, output_tokens, user_tokens_per_s_target,
           _line as priority
    from raw.benchmark_name_map
),

mlperf as (
    select *, row_number() over () as rid
    from raw.feed_mlperf
    where category = 'closed' and suite = 'datacenter' and performance_units = 'Tokens/s'
      and accelerator is not null and accelerator not like '%,%' and performance_result > 0
    qualify row_number() over (partition by version, location order by vintage_as_of desc, retrieved_at desc) = 1
),

inferencex as (
    select *, row_number() over () as rid
    from raw.feed_inferencex
    qualify row_number() over (
        partition by date, model, hardware, framework, precision, spec_method, disagg, benchmark_type, isl, osl, conc,
            num_prefill_gpu, num_decode_gpu
        order by vintage_as_of desc, retrieved_at desc) = 1
),

targets as (  -- the text each mapped field of a row is matched against
    select 'mlperf' as feed, rid, 'chip' as field, accelerator as text from mlperf
    union all
    select 'mlperf', rid, 'model', model from mlperf
    union all
    select 'mlperf', rid, 'scenario', scenario from mlperf
    union all
    select 'inferencex', rid, 'chip', hardware from inferencex
    union all
    select 'inferencex', rid, 'model', model from inferencex
),

matches as (  -- per row and field, the first matching name in file order
    select t.feed, t.rid, t.field, n.value, n.prompt_tokens, n.output_tokens, n.user_tokens_per_s_target
    from targets as t
    inner join names as n on t.feed = n.feed and t.field = n.field and lower(t.text) like n.pattern
    qualify row_number() over (partition by t.feed, t.rid, t.field order by n.priority) = 1
),

mlperf_mapped as (
    select m.*, c.value as chip, d.value as catalog_model, d.prompt_tokens, d.output_tokens,
           s.user_tokens_per_s_target as user_target, s.value is not null as scenario_known
    from mlperf as m
    left join matches as c on c.feed = 'mlperf' and m.rid = c.rid and c.field = 'chip'
    left join matches as d on d.feed = 'mlperf' and m.rid = d.rid and d.field = 'model'
    left join matches as s on s.feed = 'mlperf' and m.rid = s.rid and s.field = 'scenario'
),

inferencex_mapped as (
    select i.*, c.value as chip, d.value as catalog_model
    from inferencex as i
    left join matches as c on c.feed = 'inferencex' and i.rid = c.rid and c.field = 'chip'
    left join matches as d on d.feed = 'inferencex' and i.rid = d.rid and d.field = 'model'
),

final as (
    select
        'mlperf_' || replace(version, '.', '_') || ':' || location as measurement_id,
        chip,
        cast(accelerators_per_node * coalesce(nodes, 1) as double) as chips,
        catalog_model as model,
        case when lower(weight_data_types) like '%fp4%' then 'fp4'
             when lower(weight_data_types) like '%fp8%' or lower(weight_data_types) like '%int8%' then 'fp8'
             else 'bf16' end as precision,
        'MLPerf ' || submitter as engine,
        'mixed' as phase,
        prompt_tokens,
        output_tokens,
        cast(null as double) as concurrency,
        user_target as user_tokens_per_s_target,
        performance_result / (accelerators_per_node * coalesce(nodes, 1)) as tokens_per_s_per_chip,
        cast(null as double) as tokens_per_s_per_user,
        'mlperf_inference_' || replace(version, '.', '_') || '_feed' as source_id,
        cast(vintage_as_of as date) as published_on,
        false as in_fit,
        system || ', ' || model || ' ' || scenario || ' (' || submitter || ')' as note,
        cast(null as varchar) as kv_precision,
        'mlperf' as feed
    from mlperf_mapped
    where chip is not null and catalog_model is not null and scenario_known and accelerators_per_node > 0

    union all

    select
        'inferencex:' || date || ':' || hardware || ':' || framework || ':' || precision || ':' || isl || '/' || osl
            || ':c' || conc || case when disagg then ':disagg' else '' end as measurement_id,
        chip,
        cast(greatest(num_prefill_gpu + num_decode_gpu, 1) as double) as chips,
        catalog_model as model,
        case when lower(precision) like '%fp4%' then 'fp4' when lower(precision) like '%fp8%' then 'fp8'
             else 'bf16' end as precision,
        framework as engine,
        'mixed' as phase,
        cast(isl as double) as prompt_tokens,
        cast(osl as double) as output_tokens,
        cast(conc as double) as concurrency,
        cast(null as double) as user_tokens_per_s_target,
        tput_per_gpu as tokens_per_s_per_chip,
        median_intvty as tokens_per_s_per_user,
        'inferencex_feed' as source_id,
        date as published_on,
        false as in_fit,
        'InferenceX ' || model || ' on ' || hardware || ' (' || framework || ', ' || precision || ', ' || isl || '/'
            || osl || ' tokens, concurrency ' || conc || ')' as note,
        cast(null as varchar) as kv_precision,
        'inferencex' as feed
    from inferencex_mapped
    where chip is not null and catalog_model is not null and tput_per_gpu > 0
)

select * from final
order by measurement_id
