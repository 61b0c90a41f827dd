SELECT id, source, external_event_id, event_type, payload, fingerprint, conversion_id,
       delivery_count, conflict_count,
       to_char(first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM webhook_events
WHERE source = $1 AND external_event_id = $2
