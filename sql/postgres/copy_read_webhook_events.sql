-- hooklatch copy (SPEC §5.2): reads a batch of `webhook_events`, every column as text (timestamps as stored text), in key order after $1 up to $3 (the bound taken when the copy began). Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
SELECT id::text,
       source,
       external_event_id,
       event_type,
       payload,
       fingerprint,
       conversion_id::text,
       delivery_count::text,
       conflict_count::text,
       to_char(first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
  FROM webhook_events
 WHERE id > $1 AND id <= $3
 ORDER BY id
 LIMIT $2
