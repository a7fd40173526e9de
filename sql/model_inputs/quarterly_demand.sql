-- model_inputs.quarterly_demand: token-demand forecasts (tokens/day) at each quarter's last month, labelled
-- by the quarter's first day: the demand the hardware model sizes for at that quarter's end.
with final as (
    select
        series_id,
        cast(date_trunc('quarter', period_start) as date) as period_start,
        value,
        lo80,
        hi80,
        lo95,
        hi95,
        model_name
    from marts.forecast
    where is_forecast
      and series_id like 'tokens/%'
      and month(period_start) in (3, 6, 9, 12)
)

select * from final
order by series_id, period_start
