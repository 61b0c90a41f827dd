-- Oldest first, so an import replays events in the order they were first seen (a
-- conversion's lifecycle depends on it). Served by idx_webhook_events_seen.
-- Parameters: source (NULL: all), until, lower key (time, id), limit; `since` and the
-- cursor are folded into the lower key, so the index range is bounded.
SELECT id, source, external_event_id, event_type, payload,
       to_char(first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       delivery_count
FROM webhook_events
WHERE ($1::text IS NULL OR source = $1)
  AND first_seen_at < $2::timestamptz
  AND (first_seen_at, id) > ($3::timestamptz, $4::bigint)
ORDER BY first_seen_at, id
LIMIT $5::bigint
