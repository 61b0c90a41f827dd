-- Queues every recorded event of a source first seen in [$2, $3) again, whatever its
-- state (an event without an entry gets one), with a fresh schedule.
INSERT INTO forward_outbox (webhook_event_id, source, next_attempt_at, created_at, event_seen_at)
SELECT id, source, now(), now(), first_seen_at FROM webhook_events
WHERE source = $1 AND first_seen_at >= $2::text::timestamptz
  AND ($3::text IS NULL OR first_seen_at < $3::text::timestamptz)
ON CONFLICT (webhook_event_id) DO UPDATE
    SET state = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at
