SELECT o.state, o.attempts, o.last_status, o.last_error,
       to_char(o.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(o.delivered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM forward_outbox o
JOIN webhook_events e ON e.id = o.webhook_event_id
WHERE e.source = $1 AND e.external_event_id = $2
