-- Events of one type newest first; served by idx_webhook_events_type
-- (event_type, first_seen_at, id) (migration 009), so a type that is rare or never sent
-- answers in one index range.
-- Parameters: source, event_type, event_id, since, duplicated, conflicted, forward
-- state, upper key (time, id), limit. NULL means "no filter". The backend folds `until`
-- and the cursor into the one upper key and binds the widest range when absent, so the
-- index range is bounded on both ends (a `? IS NULL OR …` bound would make SQLite scan).
SELECT e.id, e.source, e.external_event_id, e.event_type, e.conversion_id,
       e.delivery_count, e.conflict_count,
       to_char(e.first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(e.last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       f.state, f.attempts, f.last_status, f.last_error,
       to_char(f.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(f.delivered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM webhook_events e
LEFT JOIN forward_outbox f ON f.webhook_event_id = e.id
WHERE ($1::text IS NULL OR e.source = $1)
  AND e.event_type = $2::text
  AND ($3::text IS NULL OR e.external_event_id = $3)
  AND e.first_seen_at >= $4::timestamptz
  AND ($5::bool IS NULL OR (e.delivery_count > 1) = $5)
  AND ($6::bool IS NULL OR (e.conflict_count > 0) = $6)
  AND ($7::text IS NULL OR f.state = $7)
  AND (e.first_seen_at, e.id) < ($8::timestamptz, $9::bigint)
ORDER BY e.first_seen_at DESC, e.id DESC
LIMIT $10::bigint
