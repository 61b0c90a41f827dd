-- hooklatch copy (SPEC §5.2): reads a batch of `forward_attempts`, every column as text (timestamps as stored text), in key order after $1 up to $3 (the bound taken when the copy began). Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
SELECT id::text,
       webhook_event_id::text,
       to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       status::text,
       duration_ms::text,
       error,
       response
  FROM forward_attempts
 WHERE id > $1 AND id <= $3
 ORDER BY id
 LIMIT $2
