INSERT INTO conversions
    (source, external_event_id, order_id, commission_amount, sale_amount, currency, tracking_id, status, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
ON CONFLICT (source, external_event_id) DO NOTHING
RETURNING id, status, currency, sale_amount, commission_amount
