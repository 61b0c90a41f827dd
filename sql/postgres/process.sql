SELECT outcome, webhook_event_id, conversion_id
FROM process_webhook_idempotently($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
