UPDATE forward_outbox
SET state = 'delivered', attempts = attempts + 1, last_status = ?3, last_error = NULL,
    delivered_at = ?4, lease_owner = NULL, lease_until = NULL
WHERE webhook_event_id = ?1 AND lease_owner = ?2 AND state = 'pending'
RETURNING source
