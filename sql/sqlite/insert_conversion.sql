INSERT INTO conversions
    (source, external_event_id, order_id, commission_amount, sale_amount, currency, tracking_id, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
RETURNING id
