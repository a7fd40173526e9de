-- marts.cost_at_interactivity: cost per million output tokens of each chip x model of
-- marts.interactivity_curves at three per-user speed levels (meta.assumptions report.interactivity_*:
-- reading speed, fast chat, agents), as InferenceX reports cost at fixed interactivity: the cheapest
-- configuration (batch, replica) whose per-user speed reaches the level. A chip that cannot reach a
-- level has no row for it.
with levels as (
    select
        replace(name, 'report.interactivity_', '') as level,
        value as min_tokens_per_s_per_user
    from meta.assumptions
    where name like 'report.interactivity_%'
),

reaching as (
    select
        c.chip,
        c.chip_class,
        c.model_name,
        c.precision,
        l.level,
        l.min_tokens_per_s_per_user,
        c.tokens_per_s_per_user,
        c.tokens_per_s_per_chip,
        c.batch,
        c.replica_chips,
        c.usd_per_million_output_tokens
    from marts.interactivity_curves as c
    inner join levels as l on c.tokens_per_s_per_user >= l.min_tokens_per_s_per_user
),

final as (
    select
        chip,
        any_value(chip_class) as chip_class,
        model_name,
        precision,
        level,
        any_value(min_tokens_per_s_per_user) as min_tokens_per_s_per_user,
        arg_min(tokens_per_s_per_user, usd_per_million_output_tokens) as tokens_per_s_per_user,
        arg_min(tokens_per_s_per_chip, usd_per_million_output_tokens) as tokens_per_s_per_chip,
        arg_min(batch, usd_per_million_output_tokens) as batch,
        arg_min(replica_chips, usd_per_million_output_tokens) as replica_chips,
        min(usd_per_million_output_tokens) as usd_per_million_output_tokens
    from reaching
    group by chip, model_name, precision, level
)

select * from final
order by model_name, chip, precision, min_tokens_per_s_per_user
