-- The kept per-source totals (migration 008): the folded rows plus the deltas not folded
-- yet, a few rows each however many events there are.
SELECT source, sum(events)::bigint, sum(deliveries)::bigint, sum(conflicts)::bigint,
       to_char(max(last_seen_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM (SELECT source, events, deliveries, conflicts, last_seen_at FROM source_totals
      UNION ALL
      SELECT source, events, deliveries, conflicts, last_seen_at FROM source_total_deltas) t
GROUP BY source
ORDER BY source
