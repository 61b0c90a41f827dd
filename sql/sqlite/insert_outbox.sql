INSERT INTO forward_outbox (webhook_event_id, source, next_attempt_at, created_at)
VALUES (?1, ?2, ?3, ?3)
