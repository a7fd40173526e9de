-- marts.call_log_unknown_models: call-log models that no pattern of model_slug_map.csv matches, with their
-- volume, so the user can extend the catalog (they stay in marts.call_volume_daily under their raw name).
with final as (
    select
        model,
        sum(requests) as requests,
        sum(prompt_tokens + completion_tokens) as total_tokens,
        min(day) as first_day,
        max(day) as last_day
    from marts.call_volume_daily
    where catalog_model is null
    group by model
)

select * from final
order by total_tokens desc
