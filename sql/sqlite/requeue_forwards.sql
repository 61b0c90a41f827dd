UPDATE forward_outbox
SET state = 'pending', attempts = 0, next_attempt_at = ?3
WHERE (?1 IS NULL OR source = ?1) AND (?2 = 0 OR state = 'failed')
