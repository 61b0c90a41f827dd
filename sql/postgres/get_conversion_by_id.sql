SELECT id, source, external_conversion_id, external_event_id, order_id,
       sale_amount::text, commission_amount::text, currency, status, affiliate_id,
       affiliate_code, tracking_id,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM conversions
WHERE id = $1
