INSERT INTO webhook_events
    (source, external_event_id, event_type, payload, fingerprint, conversion_id, first_seen_at,
     last_seen_at, delivery_count)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
RETURNING id
