SELECT e.id, e.fingerprint, e.conversion_id, c.status
FROM webhook_events e
LEFT JOIN conversions c ON c.id = e.conversion_id
WHERE e.source = ?1 AND e.external_event_id = ?2
