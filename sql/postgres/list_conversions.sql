-- Conversions newest first; served by idx_conversions_created (created_at, id).
-- Parameters: status, currency, order_id, since, until, cursor time, cursor id, limit.
SELECT id, source, external_conversion_id, external_event_id, order_id,
       sale_amount::text, commission_amount::text, currency, status, affiliate_id,
       affiliate_code, tracking_id,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM conversions
WHERE ($1::text IS NULL OR status = $1)
  AND ($2::text IS NULL OR currency = $2)
  AND ($3::text IS NULL OR order_id = $3)
  AND ($4::text IS NULL OR created_at >= $4::timestamptz)
  AND ($5::text IS NULL OR created_at < $5::timestamptz)
  AND ($6::text IS NULL
       OR created_at < $6::timestamptz
       OR (created_at = $6::timestamptz AND id < $7::bigint))
ORDER BY created_at DESC, id DESC
LIMIT $8::bigint
