-- marts.call_volume_daily: request-level call logs per day, model and provider, with the model's origin
-- (raw.model_authors, by the slug's author prefix), the catalog model that stands for it (first matching
-- pattern of raw.model_slug_map) and its active parameters. Models that match no pattern keep their raw
-- name with a null catalog_model (listed in marts.call_log_unknown_models).
with slugs as (
    select distinct model from raw.call_log_daily
),

matched as (
    select s.model, m.model as catalog_model,
           row_number() over (partition by s.model order by m._line) as match_rank
    from slugs as s
    inner join raw.model_slug_map as m on lower(s.model) like lower(m.slug_pattern)
),

final as (
    select
        d.day,
        d.model,
        d.provider,
        coalesce(a.origin, 'unknown') as origin,
        m.catalog_model,
        c.active_params_b,
        d.requests,
        d.failed_requests,
        d.prompt_tokens,
        d.completion_tokens,
        d.cached_tokens,
        d.reasoning_tokens
    from raw.call_log_daily as d
    left join matched as m on d.model = m.model and m.match_rank = 1
    left join raw.model_authors as a on a.author = split_part(d.model, '/', 1)
    left join raw.model_catalog as c on m.catalog_model = c.model
)

select * from final
order by day, model, provider
