-- hooklatch copy (SPEC §5.2): reads a batch of `forward_outbox`, every column as text (timestamps as stored text), in key order after $1 up to $3 (the bound taken when the copy began). Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
SELECT webhook_event_id::text,
       source,
       state,
       attempts::text,
       to_char(next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       lease_owner,
       to_char(lease_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       last_status::text,
       last_error,
       to_char(delivered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
  FROM forward_outbox
 WHERE webhook_event_id > $1 AND webhook_event_id <= $3
 ORDER BY webhook_event_id
 LIMIT $2
