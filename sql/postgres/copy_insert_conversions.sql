-- hooklatch copy (SPEC §5.2): writes a batch of `conversions`, every column in one statement (one text array per column), ids kept; answers the keys it wrote. A row whose key (or unique key) is taken is left alone and compared by the caller. Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
INSERT INTO conversions (id, source, external_event_id, order_id, commission_amount, sale_amount, currency, tracking_id, created_at, external_conversion_id, status, affiliate_id, affiliate_code, source_updated_at, updated_at) OVERRIDING SYSTEM VALUE
SELECT u.c1::bigint, u.c2, u.c3, u.c4, u.c5::numeric, u.c6::numeric, u.c7, u.c8, u.c9::timestamptz, u.c10, u.c11, u.c12, u.c13, u.c14::timestamptz, u.c15::timestamptz
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[]) AS u(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15)
ON CONFLICT DO NOTHING
RETURNING id
