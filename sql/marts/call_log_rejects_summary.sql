-- marts.call_log_rejects_summary: rejected call-log rows per day and reason (rows themselves, with file
-- and row number, are in raw.call_log_rejects).
with final as (
    select day, reason, count(*) as rows, count(distinct file) as files, min(file) as example_file,
           min(row_number) as example_row
    from raw.call_log_rejects
    group by day, reason
)

select * from final
order by day, reason
