UPDATE webhook_events
SET delivery_count = delivery_count + ?2, last_seen_at = max(last_seen_at, ?3)
WHERE id = ?1
RETURNING source
