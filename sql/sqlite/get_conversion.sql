SELECT id, source, external_event_id, order_id, commission_amount, sale_amount, currency,
       tracking_id, created_at
FROM conversions
WHERE source = ?1 AND external_event_id = ?2
