-- hooklatch copy (SPEC §5.2): reads a batch of `webhook_events`, every column, in key order after ?1 up to ?3 (the bound taken when the copy began). Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
SELECT id, source, external_event_id, event_type, payload, fingerprint, conversion_id, delivery_count, conflict_count, first_seen_at, last_seen_at
  FROM webhook_events
 WHERE id > ?1 AND id <= ?3
 ORDER BY id
 LIMIT ?2
