-- staging.openrouter_daily: OpenRouter's rankings-daily feed (top 50 models per UTC day plus one 'other'
-- row), one row per (day, model): the value of the newest vintage that holds the day, so a day missing
-- from a later vintage keeps its earlier value. author is the slug's prefix; is_other marks the long tail.
-- week_start is the day's Monday; complete_week says all seven days of that week are held (the marts use
-- complete weeks only).
with picked as (
    select
        day,
        model_permaslug,
        total_tokens,
        vintage,
        vintage_as_of
    from raw.feed_openrouter
    qualify row_number() over (partition by day, model_permaslug order by vintage_as_of desc, retrieved_at desc) = 1
),

final as (
    select
        day,
        cast(date_trunc('week', day) as date) as week_start,
        count(distinct day) over (partition by date_trunc('week', day)) = 7 as complete_week,
        model_permaslug,
        model_permaslug = 'other' as is_other,
        case when model_permaslug = 'other' then null else split_part(model_permaslug, '/', 1) end as author,
        total_tokens,
        vintage,
        cast(vintage_as_of as date) as known_on
    from picked
)

select * from final
order by day asc, is_other asc, total_tokens desc
