SELECT count(*) FROM webhook_events
WHERE payload IS NOT NULL AND first_seen_at < $1::timestamptz AND last_seen_at < $1::timestamptz
