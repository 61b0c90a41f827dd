-- What one writer batch changed for one source.
INSERT INTO source_totals AS t (source, events, deliveries, conflicts, last_seen_at)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (source) DO UPDATE SET
    events       = t.events + excluded.events,
    deliveries   = t.deliveries + excluded.deliveries,
    conflicts    = t.conflicts + excluded.conflicts,
    last_seen_at = max(t.last_seen_at, excluded.last_seen_at)
