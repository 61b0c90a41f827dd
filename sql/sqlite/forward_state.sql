SELECT o.state, o.attempts, o.last_status, o.last_error, o.next_attempt_at, o.delivered_at
FROM forward_outbox o
JOIN webhook_events e ON e.id = o.webhook_event_id
WHERE e.source = ?1 AND e.external_event_id = ?2
