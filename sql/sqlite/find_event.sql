SELECT id, fingerprint, conversion_id
FROM webhook_events
WHERE source = ?1 AND external_event_id = ?2
