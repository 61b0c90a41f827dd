-- hooklatch copy (SPEC §5.2): reads a batch of `conversions`, every column, in key order after ?1 up to ?3 (the bound taken when the copy began). Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
SELECT id, source, external_event_id, order_id, commission_amount, sale_amount, currency, tracking_id, created_at, external_conversion_id, status, affiliate_id, affiliate_code, source_updated_at, updated_at
  FROM conversions
 WHERE id > ?1 AND id <= ?3
 ORDER BY id
 LIMIT ?2
