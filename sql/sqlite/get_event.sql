SELECT id, source, external_event_id, event_type, payload, fingerprint, conversion_id,
       delivery_count, conflict_count, first_seen_at, last_seen_at
FROM webhook_events
WHERE source = ?1 AND external_event_id = ?2
