-- SKIP LOCKED: instances claiming at the same moment take disjoint entries instead of
-- queueing behind each other; the lease keeps an entry theirs after the commit.
-- Paused sources (SPEC §6.1) and the sources this worker is pacing ($4, a JSON array of
-- names) are skipped: their entries stay pending, untouched.
WITH due AS (
    SELECT webhook_event_id FROM forward_outbox
    WHERE state = 'pending' AND next_attempt_at <= now()
      AND (lease_until IS NULL OR lease_until <= now())
      AND source NOT IN (SELECT source FROM forward_sources WHERE paused_at IS NOT NULL)
      AND source NOT IN (SELECT jsonb_array_elements_text($4::text::jsonb))
    ORDER BY next_attempt_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE forward_outbox o
    SET lease_owner = $1, lease_until = now() + make_interval(secs => $3)
    FROM due
    WHERE o.webhook_event_id = due.webhook_event_id
    RETURNING o.webhook_event_id, o.attempts
)
SELECT e.id, e.source, e.external_event_id, e.event_type, e.payload, c.attempts
FROM claimed c
JOIN webhook_events e ON e.id = c.webhook_event_id
