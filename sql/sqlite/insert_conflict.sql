INSERT INTO webhook_conflicts (webhook_event_id, fingerprint, payload, received_at)
VALUES (?1, ?2, ?3, ?4)
