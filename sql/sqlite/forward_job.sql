SELECT e.id, e.source, e.external_event_id, e.event_type, e.payload, o.attempts
FROM forward_outbox o
JOIN webhook_events e ON e.id = o.webhook_event_id
WHERE o.webhook_event_id = ?1
