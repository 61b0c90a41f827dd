-- hooklatch copy (SPEC §5.2): writes a batch of `webhook_events`, every column in one statement (one text array per column), ids kept; answers the keys it wrote. A row whose key (or unique key) is taken is left alone and compared by the caller. Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
INSERT INTO webhook_events (id, source, external_event_id, event_type, payload, fingerprint, conversion_id, delivery_count, conflict_count, first_seen_at, last_seen_at) OVERRIDING SYSTEM VALUE
SELECT u.c1::bigint, u.c2, u.c3, u.c4, u.c5, u.c6, u.c7::bigint, u.c8::bigint, u.c9::bigint, u.c10::timestamptz, u.c11::timestamptz
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[]) AS u(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11)
ON CONFLICT DO NOTHING
RETURNING id
