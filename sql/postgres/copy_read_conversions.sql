-- hooklatch copy (SPEC §5.2): reads a batch of `conversions`, every column as text (timestamps as stored text), in key order after $1 up to $3 (the bound taken when the copy began). Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
SELECT id::text,
       source,
       external_event_id,
       order_id,
       commission_amount::text,
       sale_amount::text,
       currency,
       tracking_id,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       external_conversion_id,
       status,
       affiliate_id,
       affiliate_code,
       to_char(source_updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
  FROM conversions
 WHERE id > $1 AND id <= $3
 ORDER BY id
 LIMIT $2
