-- The recount verify-totals compares the kept totals with: one pass over webhook_events,
-- grouped on idx_webhook_events_source_seen.
SELECT source, count(*), sum(delivery_count)::bigint,
       sum(conflict_count)::bigint,
       to_char(max(last_seen_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM webhook_events
GROUP BY source
ORDER BY source
