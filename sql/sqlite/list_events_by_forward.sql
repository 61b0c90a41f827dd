-- Events whose forwarding is pending or failed, newest first: one range of
-- idx_forward_outbox_listed (state, event_seen_at, webhook_event_id) walked backwards
-- until the page is full (migration 010), each event then fetched by its id. The
-- outbox's event_seen_at is its event's first_seen_at, so the order and the cursor are
-- the event list's own (first_seen_at, id). CROSS JOIN fixes the loop order: left to
-- itself SQLite may walk every event in time order instead.
-- Parameters: source, event_type, event_id, since, duplicated, conflicted, forward
-- state, upper key (time, id), limit. NULL means "no filter". The backend folds `until`
-- and the cursor into the one upper key and binds the widest range when absent, so the
-- index range is bounded on both ends (a `? IS NULL OR …` bound would make SQLite scan).
SELECT e.id, e.source, e.external_event_id, e.event_type, e.conversion_id,
       e.delivery_count, e.conflict_count,
       e.first_seen_at,
       e.last_seen_at,
       f.state, f.attempts, f.last_status, f.last_error,
       f.next_attempt_at,
       f.delivered_at
FROM forward_outbox f
CROSS JOIN webhook_events e
WHERE f.state = ?7
  AND f.event_seen_at >= ?4
  AND (f.event_seen_at, f.webhook_event_id) < (?8, ?9)
  AND e.id = f.webhook_event_id
  AND (?1 IS NULL OR e.source = ?1)
  AND (?2 IS NULL OR e.event_type = ?2)
  AND (?3 IS NULL OR e.external_event_id = ?3)
  AND (?5 IS NULL OR (e.delivery_count > 1) = ?5)
  AND (?6 IS NULL OR (e.conflict_count > 0) = ?6)
ORDER BY f.event_seen_at DESC, f.webhook_event_id DESC
LIMIT ?10
