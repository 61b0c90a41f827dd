INSERT INTO forward_outbox (webhook_event_id, source, next_attempt_at, created_at, event_seen_at)
SELECT id, source, now(), now(), first_seen_at FROM webhook_events
WHERE source = $1 AND external_event_id = $2
ON CONFLICT (webhook_event_id) DO UPDATE
    SET state = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at
RETURNING webhook_event_id
