-- hooklatch copy (SPEC §5.2): writes one row of `conversions`, every column as read from the other store, ids kept; a row whose key (or unique key) is taken is left alone and compared by the caller. Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
INSERT INTO conversions (id, source, external_event_id, order_id, commission_amount, sale_amount, currency, tracking_id, created_at, external_conversion_id, status, affiliate_id, affiliate_code, source_updated_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
ON CONFLICT DO NOTHING
