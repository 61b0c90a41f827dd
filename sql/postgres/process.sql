-- $15 is bound as RFC 3339 text (…Z), so the cast does not depend on the session's zone.
SELECT outcome, webhook_event_id, conversion_id, conversion_status, applied
FROM process_webhook_idempotently($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                                  $15::text::timestamptz, $16)
