-- hooklatch copy (SPEC §5.2): reads a batch of `forward_outbox`, every column, in key order after ?1 up to ?3 (the bound taken when the copy began). Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
SELECT webhook_event_id, source, state, attempts, next_attempt_at, lease_owner, lease_until, last_status, last_error, delivered_at, created_at
  FROM forward_outbox
 WHERE webhook_event_id > ?1 AND webhook_event_id <= ?3
 ORDER BY webhook_event_id
 LIMIT ?2
