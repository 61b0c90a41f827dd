SELECT count(*) FROM webhook_events INDEXED BY idx_webhook_events_prunable
WHERE payload IS NOT NULL AND first_seen_at < ?1 AND last_seen_at < ?1
