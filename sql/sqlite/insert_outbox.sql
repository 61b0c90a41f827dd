-- event_seen_at is the just-inserted event's first_seen_at (migration 010 orders the
-- pending and failed lists by it): one lookup of a row this transaction just wrote.
INSERT INTO forward_outbox (webhook_event_id, source, next_attempt_at, created_at, event_seen_at)
VALUES (?1, ?2, ?3, ?3, (SELECT first_seen_at FROM webhook_events WHERE id = ?1))
