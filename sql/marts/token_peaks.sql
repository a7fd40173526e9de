-- marts.token_peaks: peak-rate disclosures, each against the platform's latest average figure on or
-- before the peak, giving the peak-to-average factor that fleet sizing uses (capacity serves peaks).
with peaks as (
    select * from staging.token_volume where is_peak
),

averages as (
    select platform, segment, observed_on, tokens_per_day
    from staging.token_volume
    where not is_peak
),

final as (
    select
        p.observed_on,
        p.platform,
        p.segment,
        p.tokens_per_day as peak_tokens_per_day,
        a.observed_on as average_observed_on,
        a.tokens_per_day as average_tokens_per_day,
        p.tokens_per_day / a.tokens_per_day as peak_to_average,
        p.source_id,
        p.confidence
    from peaks as p
    asof left join averages as a
        on p.platform = a.platform and p.segment = a.segment and p.observed_on >= a.observed_on
)

select * from final
order by platform, segment, observed_on
