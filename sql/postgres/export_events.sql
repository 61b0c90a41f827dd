-- Oldest first, so an import replays events in the order they were first seen (a
-- conversion's lifecycle depends on it). Served by idx_webhook_events_seen.
-- Parameters: source, since, until, cursor time, cursor id, limit.
SELECT id, source, external_event_id, event_type, payload,
       to_char(first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       delivery_count
FROM webhook_events
WHERE ($1::text IS NULL OR source = $1)
  AND ($2::text IS NULL OR first_seen_at >= $2::timestamptz)
  AND ($3::text IS NULL OR first_seen_at < $3::timestamptz)
  AND ($4::text IS NULL
       OR first_seen_at > $4::timestamptz
       OR (first_seen_at = $4::timestamptz AND id > $5::bigint))
ORDER BY first_seen_at, id
LIMIT $6::bigint
