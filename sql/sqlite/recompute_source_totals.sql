-- verify-totals --repair, and copy: the source totals rebuilt from the rows, in the
-- writer's transaction. conversion_totals is rebuilt beside it from Rust (decimal sums).
DELETE FROM source_totals;
INSERT INTO source_totals (source, events, deliveries, conflicts, last_seen_at)
SELECT source, count(*), sum(delivery_count), sum(conflict_count), max(last_seen_at)
  FROM webhook_events
 GROUP BY source;
DELETE FROM conversion_totals;
