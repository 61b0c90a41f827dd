-- Paused sources (SPEC §6.1) and the sources this worker is pacing (?5, a JSON array of
-- names) are skipped: their entries stay pending, untouched.
UPDATE forward_outbox
SET lease_owner = ?1, lease_until = ?2
WHERE webhook_event_id IN (
    SELECT webhook_event_id FROM forward_outbox
    WHERE state = 'pending' AND next_attempt_at <= ?3
      AND (lease_until IS NULL OR lease_until <= ?3)
      AND source NOT IN (SELECT source FROM forward_sources WHERE paused_at IS NOT NULL)
      AND source NOT IN (SELECT value FROM json_each(?5))
    ORDER BY next_attempt_at
    LIMIT ?4
)
RETURNING webhook_event_id, attempts
