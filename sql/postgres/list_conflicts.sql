SELECT c.id, c.webhook_event_id, c.fingerprint, c.payload,
       to_char(c.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM webhook_conflicts c
JOIN webhook_events e ON e.id = c.webhook_event_id
WHERE e.source = $1 AND e.external_event_id = $2
ORDER BY c.id
