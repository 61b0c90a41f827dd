SELECT count(*) FROM webhook_events WHERE payload IS NOT NULL AND last_seen_at < $1::timestamptz
