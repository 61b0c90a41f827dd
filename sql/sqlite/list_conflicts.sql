SELECT c.id, c.webhook_event_id, c.fingerprint, c.payload, c.received_at
FROM webhook_conflicts c
JOIN webhook_events e ON e.id = c.webhook_event_id
WHERE e.source = ?1 AND e.external_event_id = ?2
ORDER BY c.id
