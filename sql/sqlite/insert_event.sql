INSERT INTO webhook_events
    (source, external_event_id, event_type, payload, fingerprint, conversion_id, first_seen_at, last_seen_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
RETURNING id
