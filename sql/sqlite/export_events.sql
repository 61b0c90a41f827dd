-- Oldest first, so an import replays events in the order they were first seen (a
-- conversion's lifecycle depends on it). Served by idx_webhook_events_seen.
-- Parameters: source, since, until, cursor time, cursor id, limit.
SELECT id, source, external_event_id, event_type, payload,
       first_seen_at,
       last_seen_at,
       delivery_count
FROM webhook_events
WHERE (?1 IS NULL OR source = ?1)
  AND (?2 IS NULL OR first_seen_at >= ?2)
  AND (?3 IS NULL OR first_seen_at < ?3)
  AND (?4 IS NULL
       OR first_seen_at > ?4
       OR (first_seen_at = ?4 AND id > ?5))
ORDER BY first_seen_at, id
LIMIT ?6
