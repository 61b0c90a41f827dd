-- The recount verify-totals compares the kept totals with: one pass over webhook_events,
-- grouped on idx_webhook_events_source_seen.
SELECT source, count(*), sum(delivery_count),
       sum(conflict_count),
       max(last_seen_at)
FROM webhook_events
GROUP BY source
ORDER BY source
