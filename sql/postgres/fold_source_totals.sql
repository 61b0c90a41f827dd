-- Moves the source deltas into the totals (the flusher, about once a second, under the
-- totals advisory lock). Sources in order, so the rows are locked in one order.
WITH moved AS (DELETE FROM source_total_deltas RETURNING *)
INSERT INTO source_totals AS t (source, events, deliveries, conflicts, last_seen_at)
SELECT source, sum(events), sum(deliveries), sum(conflicts), max(last_seen_at)
  FROM moved
 GROUP BY source
 ORDER BY source
ON CONFLICT (source) DO UPDATE SET
    events       = t.events + excluded.events,
    deliveries   = t.deliveries + excluded.deliveries,
    conflicts    = t.conflicts + excluded.conflicts,
    last_seen_at = greatest(t.last_seen_at, excluded.last_seen_at)
