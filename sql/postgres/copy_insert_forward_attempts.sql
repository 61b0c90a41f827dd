-- hooklatch copy (SPEC §5.2): writes a batch of `forward_attempts`, every column in one statement (one text array per column), ids kept; answers the keys it wrote. A row whose key (or unique key) is taken is left alone and compared by the caller. Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
INSERT INTO forward_attempts (id, webhook_event_id, at, status, duration_ms, error, response)
SELECT u.c1::bigint, u.c2::bigint, u.c3::timestamptz, u.c4::bigint, u.c5::bigint, u.c6, u.c7
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS u(c1, c2, c3, c4, c5, c6, c7)
ON CONFLICT DO NOTHING
RETURNING id
