-- staging.model_slug_map: every distinct slug seen in the OpenRouter panel (curated weeks and the
-- rankings-daily feed) resolved to a catalog
-- model by the first matching LIKE pattern in file order (raw.model_slug_map._line), case-insensitive as in
-- marts.call_volume_daily and hardware/specs.resolve (one rule: lower(slug) LIKE lower(pattern)).
with slugs as (
    select model_slug from raw.openrouter_weekly_top_models
    union
    select model_permaslug from raw.feed_openrouter where model_permaslug <> 'other'
),

matches as (
    select
        s.model_slug,
        m.model,
        m.confidence as mapping_confidence,
        row_number() over (partition by s.model_slug order by m._line) as match_rank
    from slugs as s
    inner join raw.model_slug_map as m on lower(s.model_slug) like lower(m.slug_pattern)
),

final as (
    select model_slug, model, mapping_confidence
    from matches
    where match_rank = 1
)

select * from final
order by model_slug
