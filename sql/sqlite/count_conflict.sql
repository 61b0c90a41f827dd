UPDATE webhook_events
SET delivery_count = delivery_count + 1, conflict_count = conflict_count + 1, last_seen_at = ?2
WHERE id = ?1
RETURNING conflict_count
