-- Events whose forwarding is pending or failed, newest first: one range of
-- idx_forward_outbox_listed (state, event_seen_at, webhook_event_id) walked backwards
-- until the page is full (migration 010), each event then fetched by its id. The
-- outbox's event_seen_at is its event's first_seen_at, so the order and the cursor are
-- the event list's own (first_seen_at, id).
-- Parameters: source, event_type, event_id, since, duplicated, conflicted, forward
-- state, upper key (time, id), limit. NULL means "no filter". The backend folds `until`
-- and the cursor into the one upper key and binds the widest range when absent, so the
-- index range is bounded on both ends.
SELECT e.id, e.source, e.external_event_id, e.event_type, e.conversion_id,
       e.delivery_count, e.conflict_count,
       to_char(e.first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(e.last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       f.state, f.attempts, f.last_status, f.last_error,
       to_char(f.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(f.delivered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM forward_outbox f
JOIN webhook_events e ON e.id = f.webhook_event_id
WHERE f.state = $7::text
  AND f.event_seen_at >= $4::timestamptz
  AND (f.event_seen_at, f.webhook_event_id) < ($8::timestamptz, $9::bigint)
  AND ($1::text IS NULL OR e.source = $1)
  AND ($2::text IS NULL OR e.event_type = $2)
  AND ($3::text IS NULL OR e.external_event_id = $3)
  AND ($5::bool IS NULL OR (e.delivery_count > 1) = $5)
  AND ($6::bool IS NULL OR (e.conflict_count > 0) = $6)
ORDER BY f.event_seen_at DESC, f.webhook_event_id DESC
LIMIT $10::bigint
