SELECT at, status, duration_ms, error, response
FROM forward_attempts
WHERE webhook_event_id = ?1
ORDER BY id DESC
