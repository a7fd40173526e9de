-- marts.model_call_volume_weekly: OpenRouter's weekly top models, with the author's origin
-- (raw.model_authors) and the catalog model that stands for the slug (staging.model_slug_map).
-- Empty token-split cells stay null (unknown, never zero). Dense weekly series of China vs US
-- volume, and the measured workload mix (prompt:completion, cached share).
with final as (
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
    from raw.openrouter_weekly_top_models as w
    left join raw.model_authors as a on a.author = w.author
    left join staging.model_slug_map as m on m.model_slug = w.model_slug
)

select * from final
order by week_start, rank
