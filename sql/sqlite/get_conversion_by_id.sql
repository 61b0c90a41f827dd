SELECT id, source, external_conversion_id, external_event_id, order_id,
       sale_amount, commission_amount, currency, status, affiliate_id,
       affiliate_code, tracking_id,
       created_at,
       updated_at
FROM conversions
WHERE id = ?1
