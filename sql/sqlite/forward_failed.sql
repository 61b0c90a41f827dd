UPDATE forward_outbox
SET state = ?3, attempts = attempts + 1, next_attempt_at = ?4, last_status = ?5,
    last_error = ?6, lease_owner = NULL, lease_until = NULL
WHERE webhook_event_id = ?1 AND lease_owner = ?2 AND state = 'pending'
RETURNING source
