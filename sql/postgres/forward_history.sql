SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), status, duration_ms,
       error, response
FROM forward_attempts
WHERE webhook_event_id = $1
ORDER BY id DESC
