-- marts.workload_mix: the measured workload shape from OpenRouter's weekly top models, over the
-- last 8 weeks that publish the token split: the share of output (completion) tokens, the share of
-- prompt tokens served from the prefix cache, and each catalog model's share of tokens, for
-- China-origin models ('cn') and for all models ('all'). `period` says what `periods` counts (OpenRouter
-- weeks or call-log days); first_period_start and last_period_start are the first and last of them.
-- It feeds the hardware model's model mix.
-- When request-level call logs are loaded, origin group 'call_logs' holds the same measures from the
-- user's own traffic (all loaded days); the hardware model then takes its output and cached shares.
with split_weeks as (
    select distinct week_start
    from marts.model_call_volume_weekly
    where prompt_tokens is not null
    order by week_start desc
    limit 8
),

recent as (
    select m.*
    from marts.model_call_volume_weekly as m
    inner join split_weeks using (week_start)
    where m.catalog_model is not null
),

groups as (
    select 'all' as origin_group, * from recent
    union all
    select 'cn' as origin_group, * from recent where origin = 'cn'
),

shape as (
    select
        origin_group,
        sum(completion_tokens) / sum(prompt_tokens + completion_tokens) as output_share,
        sum(cached_tokens) / sum(prompt_tokens) filter (where cached_tokens is not null) as cached_share,
        'week' as period,
        count(distinct week_start) as periods,
        min(week_start) as first_period_start,
        max(week_start) as last_period_start
    from groups
    where prompt_tokens is not null and completion_tokens is not null
    group by origin_group
),

mix as (
    select origin_group, catalog_model, sum(total_tokens) as tokens
    from groups
    group by all
),

calls as (
    select
        'call_logs' as origin_group,
        catalog_model,
        sum(prompt_tokens + completion_tokens) / sum(sum(prompt_tokens + completion_tokens)) over () as token_share,
        sum(sum(completion_tokens)) over () / sum(sum(prompt_tokens + completion_tokens)) over () as output_share,
        sum(sum(cached_tokens)) over () / sum(sum(prompt_tokens)) over () as cached_share,
        'day' as period,
        count(distinct day) as periods,
        min(min(day)) over () as first_period_start,
        max(max(day)) over () as last_period_start,
        'call_logs' as source_id
    from marts.call_volume_daily
    where catalog_model is not null
    group by catalog_model
),

final as (
    select * from calls
    union all
    select
        m.origin_group,
        m.catalog_model,
        m.tokens / sum(m.tokens) over (partition by m.origin_group) as token_share,
        s.output_share,
        s.cached_share,
        s.period,
        s.periods,
        s.first_period_start,
        s.last_period_start,
        'openrouter_weekly_snapshots' as source_id
    from mix as m
    inner join shape as s using (origin_group)
)

select * from final
order by origin_group asc, token_share desc
