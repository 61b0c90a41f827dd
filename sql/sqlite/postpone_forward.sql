-- Hands a leased entry back unattempted, due again at ?3 (the worker's pace).
UPDATE forward_outbox
SET next_attempt_at = ?3, lease_owner = NULL, lease_until = NULL
WHERE webhook_event_id = ?1 AND lease_owner = ?2 AND state = 'pending'
