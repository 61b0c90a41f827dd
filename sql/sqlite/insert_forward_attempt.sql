INSERT INTO forward_attempts (webhook_event_id, at, status, duration_ms, error, response)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
