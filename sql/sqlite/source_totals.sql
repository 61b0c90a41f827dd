-- The per-source totals the writer keeps (migration 008): one row per source.
SELECT source, events, deliveries, conflicts, last_seen_at
FROM source_totals
ORDER BY source
