UPDATE forward_outbox
SET state = 'pending', attempts = 0, next_attempt_at = now()
WHERE ($1::text IS NULL OR source = $1) AND (NOT $2 OR state = 'failed')
