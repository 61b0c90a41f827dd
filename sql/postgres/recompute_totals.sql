-- verify-totals --repair, and copy: the totals rebuilt from the rows. Run in one
-- transaction holding the totals advisory lock. Writers insert deltas in their event's
-- transaction; the EXCLUSIVE lock waits for those in flight and holds back new ones
-- until this commits, so each event is counted once: in the recount, or by its delta.
LOCK TABLE source_total_deltas, conversion_total_deltas IN EXCLUSIVE MODE;
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
