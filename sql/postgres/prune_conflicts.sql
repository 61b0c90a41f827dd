-- At most 16 conflicts are kept per event, so one statement is short enough.
UPDATE webhook_conflicts SET payload = NULL WHERE payload IS NOT NULL AND received_at < $1::timestamptz
