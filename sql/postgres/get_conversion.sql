SELECT id, source, external_event_id, order_id, commission_amount, sale_amount, currency,
       tracking_id,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM conversions
WHERE source = $1 AND external_event_id = $2
