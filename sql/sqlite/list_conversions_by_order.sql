-- Conversions of one order newest first; served by idx_conversions_order
-- (order_id, created_at, id) (migration 009), one range walked backwards.
-- Parameters: status, currency, order_id, since, upper key (time, id), limit; `until`
-- and the cursor are folded into the upper key, so the index range is bounded.
SELECT id, source, external_conversion_id, external_event_id, order_id,
       sale_amount, commission_amount, currency, status, affiliate_id,
       affiliate_code, tracking_id,
       created_at,
       updated_at
FROM conversions
WHERE (?1 IS NULL OR status = ?1)
  AND (?2 IS NULL OR currency = ?2)
  AND order_id = ?3
  AND created_at >= ?4
  AND (created_at, id) < (?5, ?6)
ORDER BY created_at DESC, id DESC
LIMIT ?7
