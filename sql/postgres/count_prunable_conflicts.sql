SELECT count(*) FROM webhook_conflicts WHERE payload IS NOT NULL AND received_at < $1::timestamptz
