INSERT INTO conversions AS c
    (source, external_event_id, external_conversion_id, order_id, commission_amount, sale_amount,
     currency, status, affiliate_id, affiliate_code, source_updated_at, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)
ON CONFLICT (source, external_conversion_id) DO UPDATE SET
    order_id          = coalesce(excluded.order_id, c.order_id),
    commission_amount = excluded.commission_amount,
    sale_amount       = excluded.sale_amount,
    currency          = coalesce(excluded.currency, c.currency),
    status            = excluded.status,
    affiliate_id      = coalesce(excluded.affiliate_id, c.affiliate_id),
    affiliate_code    = coalesce(excluded.affiliate_code, c.affiliate_code),
    source_updated_at = coalesce(excluded.source_updated_at, c.source_updated_at),
    updated_at        = excluded.updated_at
-- Not stale: strictly newer, or (equal or missing timestamps) not a move back to PENDING.
WHERE excluded.source_updated_at > c.source_updated_at
   OR ((excluded.source_updated_at IS NULL OR c.source_updated_at IS NULL
        OR excluded.source_updated_at = c.source_updated_at)
       AND NOT (excluded.status = 'PENDING' AND coalesce(c.status, 'PENDING') <> 'PENDING'))
RETURNING id, status, currency, sale_amount, commission_amount
