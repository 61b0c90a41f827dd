-- A batch of imported events in one statement and one round trip: each row of the arrays
-- is one call of process_webhook_idempotently with the line's history, in the order of
-- the file (a LATERAL call runs once per row, in the order the rows are produced; each
-- call sees what the calls before it wrote). Timestamps are RFC 3339 text.
SELECT r.outcome, r.webhook_event_id, r.conversion_id, r.conversion_status, r.applied
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
              $7::numeric[], $8::numeric[], $9::text[], $10::text[], $11::text[],
              $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
              $17::text[], $18::bigint[])
       WITH ORDINALITY
       AS u(source, event_id, event_type, payload, fingerprint, order_id, commission_amount,
            sale_amount, currency, tracking_id, status, external_conversion_id, affiliate_id,
            affiliate_code, source_updated_at, first_seen_at, last_seen_at, delivery_count, n)
 CROSS JOIN LATERAL process_webhook_idempotently(
       u.source, u.event_id, u.event_type, u.payload, u.fingerprint, u.order_id,
       u.commission_amount, u.sale_amount, u.currency, u.tracking_id, u.status,
       u.external_conversion_id, u.affiliate_id, u.affiliate_code,
       u.source_updated_at::timestamptz, false, u.first_seen_at::timestamptz,
       u.last_seen_at::timestamptz, u.delivery_count) AS r
 ORDER BY u.n
