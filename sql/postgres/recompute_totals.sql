-- verify-totals --repair, and copy: the totals rebuilt from the rows. Run in one
-- REPEATABLE READ transaction holding the totals advisory lock, so every statement sees
-- one snapshot. A writer's delta rows commit with its event, so the deltas this snapshot
-- sees are exactly those of the rows it counts: they go, and the deltas of writers that
-- commit later stay and add to the recount. Nothing waits for a writer and no writer
-- waits for this: a table lock here deadlocked with deliveries, which take the two delta
-- tables in either order.
DELETE FROM source_total_deltas;
DELETE FROM conversion_total_deltas;
DELETE FROM source_totals;
DELETE FROM conversion_totals;
INSERT INTO source_totals (source, events, deliveries, conflicts, last_seen_at)
SELECT source, count(*), sum(delivery_count), sum(conflict_count), max(last_seen_at)
  FROM webhook_events
 GROUP BY source;
INSERT INTO conversion_totals (status, currency, count, sale_amount, commission_amount)
SELECT status, currency, count(*), sum(sale_amount), sum(commission_amount)
  FROM conversions
 GROUP BY status, currency;
