-- marts.model_call_volume_weekly: OpenRouter's weekly top models, with the author's origin
-- (raw.model_authors) and the catalog model that stands for the slug (staging.model_slug_map).
-- Weeks of the curated file (raw.openrouter_weekly_top_models) come first; complete Monday-Sunday weeks
-- after its last week come from the rankings-daily feed (staging.openrouter_daily): each model's seven
-- daily totals summed (a model outside the daily top 50 on some day is missing that day, which does not
-- touch a weekly top 10), ranked, top 10 kept. Empty token-split cells stay null (unknown, never zero).
-- Dense weekly series of China vs US volume, and the measured workload mix (prompt:completion, cached share).
with curated as (
    select week_start, week_end, rank, model_slug, model_name, author, total_tokens, prompt_tokens,
           completion_tokens, reasoning_tokens, cached_tokens, request_count, is_free, source_id, confidence
    from raw.openrouter_weekly_top_models
),

feed_weekly as (
    select week_start, model_permaslug as model_slug, any_value(author) as author, sum(total_tokens) as total_tokens
    from staging.openrouter_daily
    where complete_week and not is_other
      and week_start > coalesce((select max(c.week_end) from curated as c), date '1900-01-01')
    group by week_start, model_permaslug
),

feed as (
    select
        week_start,
        cast(week_start + interval 6 day as date) as week_end,
        cast(row_number() over (partition by week_start order by total_tokens desc, model_slug asc) as integer) as rank,
        model_slug,
        model_slug as model_name,
        author,
        total_tokens,
        cast(null as double) as prompt_tokens,
        cast(null as double) as completion_tokens,
        cast(null as double) as reasoning_tokens,
        cast(null as double) as cached_tokens,
        cast(null as double) as request_count,
        model_slug like '%:free' as is_free,
        'openrouter_rankings_daily' as source_id,
        'high' as confidence
    from feed_weekly
    qualify rank <= 10
),

final as (
    select
        w.week_start,
        w.week_end,
        w.rank,
        w.model_slug,
        w.model_name,
        w.author,
        coalesce(a.origin, 'unknown') as origin,
        m.model as catalog_model,
        m.mapping_confidence,
        w.total_tokens,
        w.prompt_tokens,
        w.completion_tokens,
        w.reasoning_tokens,
        w.cached_tokens,
        w.request_count as requests,
        w.is_free,
        w.source_id,
        w.confidence
    from (select * from curated
    union all
    select * from feed) as w
    left join raw.model_authors as a on w.author = a.author
    left join staging.model_slug_map as m on w.model_slug = m.model_slug
)

select * from final
order by week_start, rank
