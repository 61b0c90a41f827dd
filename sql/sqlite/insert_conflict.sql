-- ?5 is the event's conflict_count including this delivery: only the first 16 are kept
-- with their payloads (SPEC §5.3, store::KEPT_CONFLICTS); the rest are only counted.
INSERT INTO webhook_conflicts (webhook_event_id, fingerprint, payload, received_at)
SELECT ?1, ?2, ?3, ?4
WHERE ?5 <= 16
